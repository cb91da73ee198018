#!/usr/bin/env bash
# A local minikube cluster running KFP and the kftransfer image (GPUs with GPUS=all).
#   deploy/minikube.sh up | load-image | forward | demo | down   (see deploy/kind.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

PROFILE="${PROFILE:-kftransfer}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' components/__init__.py)"
IMAGE="${IMAGE:-ghcr.io/kftransfer/kftransfer:${VERSION}}"
HOST="${KFTRANSFER_KFP_HOST:-http://localhost:8080}"

case "${1:-}" in
  up)
    # --gpus all (docker driver) installs the NVIDIA device plugin; leave GPUS empty on CPU.
    minikube start --profile "${PROFILE}" --cpus 6 --memory 16g ${GPUS:+--gpus "${GPUS}"}
    deploy/install-kfp.sh
    ;;
  load-image)
    make image
    minikube image load "${IMAGE}" --profile "${PROFILE}"
    ;;
  forward)
    kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80
    ;;
  demo)
    deploy/submit-demo.sh "${HOST}" "${IMAGE}"
    ;;
  down)
    minikube delete --profile "${PROFILE}"
    ;;
  *)
    echo "usage: $0 up|load-image|forward|demo|down" >&2
    exit 2
    ;;
esac
