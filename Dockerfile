# syntax=docker/dockerfile:1
# Tollgate image: `docker build -t tollgate .`, then `docker run tollgate` serves gRPC on 9001 and HTTP on 8080.
# Multi-arch (linux/amd64, linux/arm64) with buildx: see .github/workflows/release.yml and README, "Images".
#
# Node.js 24, the active LTS line (maintained until April 2028; Node 20 reached its end of life on 2026-04-30, Node 22
# leaves maintenance in April 2027). Pinned by the digest of the multi-arch image index, so a rebuild gets the same
# base until the pin is moved on purpose; Dependabot (.github/dependabot.yml, docker ecosystem) proposes new digests.
# To move it by hand: `docker buildx imagetools inspect node:24-trixie-slim` prints the index digest. Every stage
# starts from this one, so the pin is in one place.
FROM node:24.21.0-trixie-slim@sha256:8ec5d7557396cfe32d21c3f9c13072355ceab22b584578ca4bb28af31120cffe AS node-base

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
