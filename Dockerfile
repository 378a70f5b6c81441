# syntax=docker/dockerfile:1
# ms-lesion-service: Node 24 runs the TypeScript sources directly (type stripping), so there is no build step;
# the first stage installs the production dependencies, the second is the slim non-root runtime.
#   docker build -t ms-lesion-service .
#   docker run -p 8080:8080 -v mslesion-data:/var/lib/mslesion \
#     -e MSLESION_PACS_URL=http://pacs:8042/dicom-web ms-lesion-service            # role all (default)
#   docker run -e MSLESION_ROLE=worker ... ms-lesion-service                      # or api / inference
# (set the role with MSLESION_ROLE rather than `serve --role`, so the HEALTHCHECK probes the right listener)
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# onnxruntime-node: CPU binaries ship in the package; skip its optional CUDA download.
ENV ONNXRUNTIME_NODE_INSTALL=skip \
    npm_config_fund=false \
    npm_config_audit=false \
    npm_config_update_notifier=false
# Build tools for native addons (better-sqlite3, msgpackr-extract) in case no prebuilt binary matches.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    MSLESION_DATA_DIR=/var/lib/mslesion \
    MSLESION_MODELS_DIR=/app/models \
    MSLESION_HOST=0.0.0.0 \
    MSLESION_PORT=8080
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json main.ts compose.ts config.ts ./
COPY api ./api
COPY domain ./domain
COPY adapters ./adapters
COPY cli ./cli
COPY config ./config
COPY openapi ./openapi
# The models (ONNX files, manifests, model cards) are part of the product; training code is not.
COPY models ./models
RUN rm -rf models/training models/testing models/reference \
 && mkdir -p /var/lib/mslesion \
 && chown node:node /var/lib/mslesion
USER node
EXPOSE 8080
VOLUME ["/var/lib/mslesion"]
# Liveness: /healthz of the API/worker listener, or /v2/health/live of the inference server (role inference).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const e = process.env; const inf = e.MSLESION_ROLE === 'inference'; fetch(inf ? 'http://127.0.0.1:' + (e.MSLESION_INFERENCE_PORT || 8500) + '/v2/health/live' : 'http://127.0.0.1:' + (e.MSLESION_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "cli/mslesion.ts"]
CMD ["serve"]
