# syntax=docker/dockerfile:1
# Tollgate image: `docker build -t tollgate .`, then `docker run tollgate` serves gRPC on 9001 and HTTP on 8080.
# Multi-arch (linux/amd64, linux/arm64) with buildx: see .github/workflows/release.yml and README, "Images".
#
# Node.js 26, the active LTS line (since 2026-10-28; maintained until 2029-04-30). Node 24 and 22 are in maintenance
# (until 2028-04 and 2027-04), Node 20 reached its end of life on 2026-04-30. An exact release at or after the
# 2026-10-22 security releases (26.12.1). Not yet pinned by digest: no digest of a patched release could be verified
# without a registry (docs/DEPLOYMENT.md, "The base image pin"); pin it with the index digest that
# `docker buildx imagetools inspect node:26.12.1-trixie-slim` prints, as `FROM node:26.12.1-trixie-slim@sha256:…`.
# Every stage starts from this one, so the version is written once; Dependabot (.github/dependabot.yml) proposes
# newer releases and digests.
FROM node:26.12.1-trixie-slim AS node-base

# Compile src/ to dist/ with the full toolchain.
FROM node-base AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies alone, so the runtime image carries no compiler or test tooling.
FROM node-base AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

FROM node-base
# The git commit built, shown in tollgate_build_info (the release workflow passes it).
ARG COMMIT
ENV NODE_ENV=production \
    TOLLGATE_DATA_DIR=/var/lib/tollgate \
    TOLLGATE_BUILD_COMMIT=${COMMIT}
WORKDIR /app
# package.json makes Node load dist/ and bin/ as ES modules.
COPY package.json ./
COPY --from=production-dependencies /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY proto ./proto
COPY bin ./bin
COPY examples ./examples
RUN mkdir -p /var/lib/tollgate && chown node:node /var/lib/tollgate
USER node
EXPOSE 9001 8080
ENTRYPOINT ["node", "bin/tollgate.js"]
CMD ["serve"]
