#!/usr/bin/env bash
# GKE with a T4 node pool (spot, scales to zero), KFP standalone, and Workload Identity
# so pipeline pods read and write gs://$BUCKET without keys.
#   PROJECT=my-project BUCKET=my-bucket deploy/gke.sh
set -euo pipefail

: "${PROJECT:?set PROJECT}" "${BUCKET:?set BUCKET}"
ZONE="${ZONE:-us-central1-a}"
CLUSTER="${CLUSTER:-kftransfer}"
GSA="${GSA:-kftransfer-pipelines}"
GSA_EMAIL="${GSA}@${PROJECT}.iam.gserviceaccount.com"

gcloud config set project "${PROJECT}"
gcloud container clusters create "${CLUSTER}" --zone "${ZONE}" \
  --machine-type e2-standard-8 --num-nodes 2 \
  --workload-pool "${PROJECT}.svc.id.goog"
# GPU nodes get the label cloud.google.com/gke-accelerator=nvidia-tesla-t4 and the taint
# nvidia.com/gpu=present:NoSchedule; GKE installs the driver (gpu-driver-version).
gcloud container node-pools create t4 --cluster "${CLUSTER}" --zone "${ZONE}" \
  --machine-type n1-standard-8 \
  --accelerator type=nvidia-tesla-t4,count=1,gpu-driver-version=default \
  --spot --enable-autoscaling --num-nodes 0 --min-nodes 0 --max-nodes 4 \
  --workload-metadata GKE_METADATA
gcloud container clusters get-credentials "${CLUSTER}" --zone "${ZONE}"

"$(dirname "$0")/install-kfp.sh"

# Workload Identity: KFP's pipeline-runner service account acts as a Google service
# account that may use the bucket (images, feature cache, checkpoints, models, artifacts).
gcloud iam service-accounts create "${GSA}" --display-name "kftransfer pipelines" || true
gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
  --member "serviceAccount:${GSA_EMAIL}" --role roles/storage.objectAdmin
gcloud iam service-accounts add-iam-policy-binding "${GSA_EMAIL}" \
  --role roles/iam.workloadIdentityUser \
  --member "serviceAccount:${PROJECT}.svc.id.goog[kubeflow/pipeline-runner]"
kubectl -n kubeflow annotate serviceaccount pipeline-runner --overwrite \
  "iam.gke.io/gcp-service-account=${GSA_EMAIL}"

cat <<EOT
Ready. Forward the API:  kubectl -n kubeflow port-forward svc/ml-pipeline-ui 8080:80
Then, e.g.:
  kftransfer submit gs://${BUCKET}/photos --host http://localhost:8080 \\
    --pipeline-root gs://${BUCKET}/kfp --cache-uri gs://${BUCKET}/cache \\
    --checkpoint-uri gs://${BUCKET}/checkpoints --export gs://${BUCKET}/models \\
    --gpu-count 1 --node-selector cloud.google.com/gke-accelerator=nvidia-tesla-t4 \\
    --toleration nvidia.com/gpu:NoSchedule --image REGISTRY/kftransfer:VERSION-gpu
EOT
