# One image for every step of the kftransfer pipeline, in two variants:
#   CPU: docker build -t IMAGE:VERSION .
#   GPU: docker build --build-arg VARIANT=gpu -t IMAGE:VERSION-gpu .
# Both install exactly the lock (constraints.txt, the same as the Makefile's .venv; the GPU
# variant adds constraints-gpu.txt: TensorFlow with NVIDIA's CUDA and cuDNN wheels) onto the
# Python the lock was resolved with, then the project without dependencies.
#
# Why not tensorflow/tensorflow:2.21.0[-gpu] as the base: those images (built from
# tensorflow/build's tensorflow_runtime_dockerfiles) are Ubuntu 22.04 with Python 3.11 from
# deadsnakes, and the -gpu one installs cuDNN 8.9 from apt, which TensorFlow 2.18+ cannot
# use (it needs cuDNN 9: tensorflow/build#221). TensorFlow's documented GPU install is the
# `tensorflow[and-cuda]` wheels, which bring their own CUDA and cuDNN; with them the TF
# base image adds nothing but a second Python and unpinned packages.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG VARIANT=cpu

FROM ${PYTHON_IMAGE} AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kftransfer" \
      org.opencontainers.image.description="Image-classification transfer learning as a Kubeflow Pipelines DAG" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kftransfer/kftransfer" \
      org.opencontainers.image.licenses="Apache-2.0"
# HOME is set for any uid (KFP, OpenShift and PodSecurity may run the steps as one without
# a passwd entry, whose HOME would be the unwritable /): Keras and matplotlib keep their
# caches there.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    HOME=/home/kftransfer \
    KERAS_HOME=/home/kftransfer/.keras \
    MPLCONFIGDIR=/home/kftransfer/.config/matplotlib
# uid 1000, group 0: the home is group-writable, so an arbitrary uid in group 0 works too.
# (python:3.11-slim-bookworm, Debian 12, has no uid 1000; Ubuntu 24.04 bases would.)
RUN useradd --uid 1000 --gid 0 --home-dir /home/kftransfer --create-home kftransfer \
    && mkdir -p /home/kftransfer/.keras /home/kftransfer/.config/matplotlib \
    && chmod -R g=u /home/kftransfer

FROM runtime AS cpu

FROM runtime AS gpu
# The NVIDIA container runtime exposes the GPUs a pod was given; GKE mounts the host's
# driver under /usr/local/nvidia. (Not in the CPU variant: there NVIDIA_VISIBLE_DEVICES
# would let a CPU step on a GPU node see every GPU of the node.)
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    LD_LIBRARY_PATH=/usr/local/nvidia/lib64:/usr/local/nvidia/lib

# hadolint ignore=DL3006
FROM ${VARIANT}
ARG VARIANT
WORKDIR /opt/kftransfer

# Dependencies first (a layer that survives code changes): the project's runtime
# requirements and its `cpu` or `gpu` extra, resolved against the lock.
# KerasHub (keras_hub: backbones) without its declared tensorflow-text, which would add
# the full tensorflow package (requirements-keras-hub.txt says why that is safe).
COPY constraints.txt constraints-gpu.txt requirements-keras-hub.txt pyproject.toml ./
RUN python3 -c "import sys, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + p['optional-dependencies'][sys.argv[1]]))" "${VARIANT}" > requirements.txt \
    && python3 -m pip install --no-cache-dir -c constraints.txt -c constraints-gpu.txt -r requirements.txt \
    && python3 -m pip install --no-cache-dir --no-deps -r requirements-keras-hub.txt

COPY README.md ./
COPY components ./components
COPY pipelines ./pipelines
RUN python3 -m pip install --no-cache-dir --no-deps . \
    && python3 -c "import kftransfer.components.core.features, kftransfer.pipelines.cli, keras_hub"

USER 1000:0
WORKDIR /home/kftransfer
ENTRYPOINT []
CMD ["kftransfer", "--help"]
