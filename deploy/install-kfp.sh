#!/usr/bin/env bash
# Installs Kubeflow Pipelines standalone (pinned) into the current kubectl context and
# waits until its API is up. Usage: deploy/install-kfp.sh [PIPELINE_VERSION]
set -euo pipefail

PIPELINE_VERSION="${1:-${PIPELINE_VERSION:-2.17.0}}"  # the backend matching kfp==2.17.0
MANIFESTS="github.com/kubeflow/pipelines/manifests/kustomize"

echo "installing Kubeflow Pipelines ${PIPELINE_VERSION} into $(kubectl config current-context)"
kubectl apply -k "${MANIFESTS}/cluster-scoped-resources?ref=${PIPELINE_VERSION}"
kubectl wait --for condition=established --timeout=120s crd/applications.app.k8s.io
# platform-agnostic: MinIO for artifacts, no cloud-specific pieces; works on kind,
# minikube and any cloud (artifacts can still go to gs:// with --pipeline-root).
kubectl apply -k "${MANIFESTS}/env/platform-agnostic?ref=${PIPELINE_VERSION}"
kubectl -n kubeflow rollout status deployment/ml-pipeline --timeout=900s
kubectl -n kubeflow rollout status deployment/ml-pipeline-ui --timeout=600s
echo "KFP is up. API and UI: kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80"
