# One image for every step of the kftransfer pipeline.
#   CPU: docker build -t IMAGE:VERSION .
#   GPU: docker build --build-arg VARIANT=-gpu -t IMAGE:VERSION-gpu .
# TensorFlow comes from the base image; every other package is installed at the version
# pinned in constraints.txt (the same lock as the Makefile's .venv), then the project
# itself without dependencies.
ARG TF_VERSION=2.21.0
ARG VARIANT=""
FROM tensorflow/tensorflow:${TF_VERSION}${VARIANT}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kftransfer" \
      org.opencontainers.image.description="Image-classification transfer learning as a Kubeflow Pipelines DAG" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/kftransfer/kftransfer" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2

WORKDIR /opt/kftransfer

# Dependencies first (a layer that survives code changes): the project's runtime
# requirements, resolved against the lock.
COPY constraints.txt pyproject.toml ./
RUN python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && python3 -m pip install --no-cache-dir -c constraints.txt -r requirements.txt

COPY README.md ./
COPY components ./components
COPY pipelines ./pipelines
RUN python3 -m pip install --no-cache-dir --no-deps . \
    && python3 -c "import kftransfer.components.core.features, kftransfer.pipelines.cli"

RUN useradd --create-home --uid 1000 kftransfer
USER 1000:1000
WORKDIR /home/kftransfer
ENTRYPOINT []
CMD ["kftransfer", "--help"]
