#!/usr/bin/env bash
# A local kind cluster running KFP and the kftransfer image.
#   deploy/kind.sh up            create the cluster and install KFP
#   deploy/kind.sh load-image    build (make image) and load the image into the nodes
#   deploy/kind.sh forward       port-forward the KFP UI/API to http://localhost:8080
#   deploy/kind.sh demo          submit the demo pipeline (CPU only) to it
#   deploy/kind.sh down          delete the cluster
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${CLUSTER:-kftransfer}"
NODE_IMAGE="${NODE_IMAGE:-kindest/node:v1.31.2}"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' components/__init__.py)"
IMAGE="${IMAGE:-ghcr.io/kftransfer/kftransfer:${VERSION}}"
HOST="${KFTRANSFER_KFP_HOST:-http://localhost:8080}"

case "${1:-}" in
  up)
    kind create cluster --name "${CLUSTER}" --image "${NODE_IMAGE}"
    deploy/install-kfp.sh
    ;;
  load-image)
    make image
    kind load docker-image "${IMAGE}" --name "${CLUSTER}"
    ;;
  forward)
    kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80
    ;;
  demo)
    deploy/submit-demo.sh "${HOST}" "${IMAGE}"
    ;;
  down)
    kind delete cluster --name "${CLUSTER}"
    ;;
  *)
    echo "usage: $0 up|load-image|forward|demo|down" >&2
    exit 2
    ;;
esac
