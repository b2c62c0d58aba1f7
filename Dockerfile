# syntax=docker/dockerfile:1
# Tollgate image: `docker build -t tollgate .`, then `docker run tollgate` serves gRPC on 9001 and HTTP on 8080.

# Compile src/ to dist/ with the full toolchain.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Production dependencies alone, so the runtime image carries no compiler or test tooling.
FROM node:20-slim AS production-dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

FROM node:20-slim
ENV NODE_ENV=production \
    TOLLGATE_DATA_DIR=/var/lib/tollgate
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
