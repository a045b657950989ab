# Two images from one file (see deploy/README.md):
#
#   docker build --target serve -t cnn-serve .   # Flask + gunicorn + LiteRT, no TensorFlow
#   docker build --target full  -t cnn-full  .   # + TensorFlow, TF-MOT, training; serves with the tf backend
#
# BASE_IMAGE is any Debian-like image with Python 3.11 as `python3`.
# GPU: build `full` on a CUDA-enabled TensorFlow image. Such images ship python3 with pip
# and TensorFlow but often without ensurepip, so make the venv without pip and let it see
# the base's packages: `python -m pip` then runs the base's pip, installs into the venv,
# and finds tensorflow==2.21.0 already there when the base's version matches.
#   docker build --target full -t cnn-full-gpu \
#     --build-arg BASE_IMAGE=tensorflow/tensorflow:2.21.0-gpu \
#     --build-arg VENV_ARGS="--system-site-packages --without-pip" .
# Stages run in file order with the classic builder, so `serve` comes before `full`
# and building `serve` never installs TensorFlow.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS base
ENV LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# A numeric uid so Kubernetes' runAsNonRoot can verify it without a passwd lookup.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin app
WORKDIR /app

# ---- serve: dependencies ------------------------------------------------------
FROM base AS serve-deps
ARG VENV_ARGS=
COPY requirements-serve.txt /tmp/
# pip and setuptools are not needed at run time; package test suites never run here.
RUN python3 -m venv ${VENV_ARGS} /opt/venv \
 && python -m pip install --no-cache-dir -r /tmp/requirements-serve.txt \
 && python -m pip uninstall --yes pip setuptools \
 && find /opt/venv -depth -type d -name tests -path '*/site-packages/*' -exec rm -rf {} +

# ---- what both images share: settings, user, health check, command ----------------
FROM base AS runtime
# PORT is what platforms set (Knative/KServe, Cloud Run); SERVICE_BIND, when given, wins.
# Another model repository: -v /path/repo:/models:ro -e SERVICE_MODEL_ROOT=/models
ENV PORT=8080 \
    SERVICE_MODEL_ROOT=/app/models
USER 10001:10001
EXPOSE 8080
# The port by ServiceConfig's rule (SERVICE_BIND, else PORT), without importing the
# service: this runs every 10 s.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request as u; port = (os.environ.get('SERVICE_BIND') or ':' + os.environ['PORT']).rsplit(':', 1)[1]; u.urlopen('http://127.0.0.1:%s/v2/health/live' % port, timeout=3)"]
# gunicorn.conf.py takes the address from ServiceConfig. The exec form makes gunicorn
# PID 1, so `docker stop` / Kubernetes' SIGTERM reaches it directly.
CMD ["gunicorn", "-c", "gunicorn.conf.py", "service:create_app()"]

# ---- serve: the model files the tflite backend reads ------------------------------
FROM base AS serve-models
COPY models/ /models/
# Each published version's metadata.json and model.tflite (the path every committed
# metadata names; tests/deploy/test_dockerfile.py checks it). The SavedModel and the
# Keras weights are for the tf backend and retraining (the full image); retired
# versions (.retired/) are never served.
RUN find /models -mindepth 1 -name '.*' -prune -exec rm -rf {} + \
 && find /models -type f ! -name model.tflite ! -name metadata.json -delete \
 && find /models -depth -mindepth 1 -type d -empty -delete

# ---- serve: the slim image ----------------------------------------------------
FROM runtime AS serve
# Dependencies first (they change least), then code and models, root-owned: the app
# user reads them and writes nothing here.
COPY --from=serve-deps /opt/venv /opt/venv
COPY gunicorn.conf.py ./
COPY artifact/ artifact/
COPY service/ service/
COPY --from=serve-models /models/ models/
# Not `auto`: on a GPU host auto picks tf, which this image does not hold.
ENV SERVICE_BACKEND=tflite

# ---- full: dependencies -------------------------------------------------------
FROM base AS full-deps
ARG VENV_ARGS=
COPY requirements-serve.txt requirements-train.txt /tmp/
RUN python3 -m venv ${VENV_ARGS} /opt/venv \
 && python -m pip install --no-cache-dir -r /tmp/requirements-train.txt

# ---- full: training, retraining and the tf backend ------------------------------
FROM runtime AS full
COPY --from=full-deps /opt/venv /opt/venv
COPY gunicorn.conf.py ./
COPY artifact/ artifact/
COPY service/ service/
# Every file of every version: the tf backend reads saved_model/, retraining the weights.
COPY models/ models/
COPY configs/ configs/
COPY training/ training/
# Serves with the tf backend (GPU when one is visible); a job instead:
#   docker run cnn-full python -m training retrain --name fashion
ENV SERVICE_BACKEND=tf
