#!/usr/bin/env bash
# Submits the demo run to a KFP API on a local cluster: the bundled photos (inside the
# image), CPU only, feature cache and exported models on a PersistentVolumeClaim.
# Usage: deploy/submit-demo.sh HOST IMAGE
set -euo pipefail
cd "$(dirname "$0")/.."

HOST="$1"
IMAGE="$2"
PVC="${PVC:-kftransfer-data}"
kubectl -n kubeflow apply -f deploy/pvc.yaml  # the volume, and a Job handing it to uid 1000
kubectl -n kubeflow wait --for=condition=complete job/kftransfer-data-init --timeout=300s

# The image holds the project, demo photos included, under /opt/kftransfer.
kftransfer submit /opt/kftransfer/pipelines/demo_data/fashion-mnist \
  --host "${HOST}" --image "${IMAGE}" --gpu-count 0 --pvc "${PVC}=/mnt/kftransfer" \
  --experiment kftransfer-demo --run-name "demo-$(date +%Y%m%d-%H%M%S)" \
  --backbone mobilenet --image-size 128 --fine-tune-epochs 3 \
  --cache-uri /mnt/kftransfer/cache --export /mnt/kftransfer/models
