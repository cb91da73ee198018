#!/usr/bin/env bash
# GKE with a T4 node pool (spot, scales to zero), KFP standalone, and Workload Identity
# so pipeline pods and the KFP UI read and write gs://$BUCKET without keys.
#   PROJECT=my-project BUCKET=my-bucket deploy/gke.sh
# GPUS_PER_NODE (default 1) must be at least the --gpu-count you compile with: a step
# asking for more GPUs than any node has stays Pending forever.
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${BUCKET:?set BUCKET}"
ZONE="${ZONE:-us-central1-a}"
CLUSTER="${CLUSTER:-kftransfer}"
GSA="${GSA:-kftransfer-pipelines}"
GSA_EMAIL="${GSA}@${PROJECT}.iam.gserviceaccount.com"
GPUS_PER_NODE="${GPUS_PER_NODE:-1}"
GPU_MACHINE="${GPU_MACHINE:-n1-standard-8}"
NAMESPACE="${NAMESPACE:-kubeflow}"

gcloud config set project "${PROJECT}"
gcloud container clusters create "${CLUSTER}" --zone "${ZONE}" \
  --machine-type e2-standard-8 --num-nodes 2 \
  --workload-pool "${PROJECT}.svc.id.goog"
# GPU nodes get the label cloud.google.com/gke-accelerator=nvidia-tesla-t4 and the taint
# nvidia.com/gpu=present:NoSchedule; GKE installs the driver (gpu-driver-version).
gcloud container node-pools create t4 --cluster "${CLUSTER}" --zone "${ZONE}" \
  --machine-type "${GPU_MACHINE}" \
  --accelerator "type=nvidia-tesla-t4,count=${GPUS_PER_NODE},gpu-driver-version=default" \
  --spot --enable-autoscaling --num-nodes 0 --min-nodes 0 --max-nodes 4 \
  --workload-metadata GKE_METADATA
gcloud container clusters get-credentials "${CLUSTER}" --zone "${ZONE}"

"$(dirname "$0")/install-kfp.sh"

# Workload Identity. The pipeline pods run as KFP's pipeline-runner service account (in a
# multi-user install: default-editor in each profile namespace); the KFP UI server reads
# HTML reports, curves and other artifacts from the bucket as ml-pipeline-ui, and shows
# nothing without access (frontend/server/handlers/artifacts.ts lists, then reads).
gcloud iam service-accounts create "${GSA}" --display-name "kftransfer pipelines" || true
gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
  --member "serviceAccount:${GSA_EMAIL}" --role roles/storage.objectAdmin
for ksa in pipeline-runner ml-pipeline-ui; do
  gcloud iam service-accounts add-iam-policy-binding "${GSA_EMAIL}" \
    --role roles/iam.workloadIdentityUser \
    --member "serviceAccount:${PROJECT}.svc.id.goog[${NAMESPACE}/${ksa}]"
  kubectl -n "${NAMESPACE}" annotate serviceaccount "${ksa}" --overwrite \
    "iam.gke.io/gcp-service-account=${GSA_EMAIL}"
done
kubectl -n "${NAMESPACE}" rollout restart deployment/ml-pipeline-ui  # picks up the identity

# Runs that name no pipeline root (the UI's, a schedule created elsewhere) keep their
# artifacts in the bucket, not in the cluster's MinIO.
NAMESPACE="${NAMESPACE}" BUCKET="${BUCKET}" envsubst < "$(dirname "$0")/kfp-launcher.yaml" \
  | kubectl apply -f -

cat <<EOT
Ready. Forward the API:  kubectl -n ${NAMESPACE} port-forward svc/ml-pipeline-ui 8080:80
Check it, then run:
  kftransfer doctor --host http://localhost:8080 --pipeline-root gs://${BUCKET}/kfp
  kftransfer submit gs://${BUCKET}/photos --host http://localhost:8080 \\
    --pipeline-root gs://${BUCKET}/kfp --cache-uri gs://${BUCKET}/cache \\
    --checkpoint-uri gs://${BUCKET}/checkpoints --export gs://${BUCKET}/models \\
    --gpu-count ${GPUS_PER_NODE} --node-selector cloud.google.com/gke-accelerator=nvidia-tesla-t4 \\
    --toleration nvidia.com/gpu:NoSchedule --image REGISTRY/kftransfer:VERSION \\
    --gpu-image REGISTRY/kftransfer:VERSION-gpu
EOT
