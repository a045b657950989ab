#!/usr/bin/env bash
# Build one image target and check what users and orchestrators rely on:
#
#   scripts/container-smoke.sh serve|full
#
# builds with --network host, runs the image on a free 127.0.0.1 port, waits for
# /v2/health/ready, predicts one Fashion-MNIST test image through KServe V2 and
# POST /predict (expecting its true label and the target's backend), checks that an
# undecodable image gets a JSON 400, that the process is not root, that Docker's
# HEALTHCHECK turns healthy, and that SIGTERM ends it with exit code 0 within
# gunicorn's graceful_timeout; the serve image must hold no TensorFlow. Prints JSON
# lines (build seconds, image size and what it adds to its base, seconds from
# `docker run` to ready) and removes the container, the image and the
# layers its build made (KEEP_IMAGE=1 keeps the image and its build cache).
#
# BASE_IMAGE=<image> picks the base; without it the script uses the project's local
# base-image tool where one exists beside the repository, else the Dockerfile default.
set -euo pipefail

target=${1:-}
case $target in
  serve) backend=tflite ;;
  full) backend=tf ;;
  *) echo "usage: $0 serve|full" >&2; exit 2 ;;
esac
root=$(git rev-parse --show-toplevel)
cd "$root"

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
field() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# The local base-image tool also starts a Docker engine where none runs, so it goes
# before the first docker command.
if [[ -z ${BASE_IMAGE:-} ]]; then
  tool=$root/../shared/tools/local-base-image.sh
  [[ -x $tool ]] && BASE_IMAGE=$("$tool")
fi
docker info >/dev/null 2>&1 || { echo "container-smoke: no Docker engine answers" >&2; exit 1; }

tag=cnn-smoke-$target-$$
image=$tag:latest
work=$(mktemp -d)
images_before=$work/images-before
docker images -aq --no-trunc | sort -u >"$images_before"

cleanup() {
  docker rm -f "$tag" >/dev/null 2>&1 || true
  if [[ -z ${KEEP_IMAGE:-} ]]; then
    docker rmi -f "$image" >/dev/null 2>&1 || true
    # Stage images the classic builder left behind (the deps stages): only ours.
    comm -13 "$images_before" <(docker images -aq --no-trunc | sort -u) | xargs -r docker rmi -f >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "container-smoke: FAIL: $*" >&2
  docker logs --tail 40 "$tag" 2>&1 | sed 's/^/  container: /' >&2 || true
  exit 1
}

build_args=()
[[ -n ${BASE_IMAGE:-} ]] && build_args=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
base=${BASE_IMAGE:-python:3.11-slim-bookworm}

echo "container-smoke: building $target on $base" >&2
t0=$(now)
docker build --network host --target "$target" -t "$image" "${build_args[@]}" . >"$work/build.log" 2>&1 \
  || { tail -n 40 "$work/build.log" >&2; fail "docker build"; }
build_s=$(since "$t0")
size=$(docker image inspect -f '{{.Size}}' "$image")
base_size=$(docker image inspect -f '{{.Size}}' "$base")
echo "{\"event\": \"build\", \"target\": \"$target\", \"base\": \"$base\", \"build_s\": $build_s}"
echo "{\"event\": \"image\", \"target\": \"$target\", \"size_mib\": $(mib "$size"), \"base_mib\": $(mib "$base_size"), \"added_mib\": $(mib $((size - base_size)))}"

port=$(free_port)
url=http://127.0.0.1:$port
t0=$(now)
docker run -d --name "$tag" --network host -e "SERVICE_BIND=127.0.0.1:$port" "$image" >/dev/null
run_s=$(since "$t0")   # creating the container: copies the whole image on a vfs-backed daemon
until [[ $(curl -s -o /dev/null -w '%{http_code}' "$url/v2/health/ready") == 200 ]]; do
  [[ $(docker inspect -f '{{.State.Running}}' "$tag") == true ]] || fail "container exited before ready"
  awk -v s="$(since "$t0")" 'BEGIN { exit !(s > 300) }' && fail "not ready after 300 s"
  sleep 0.05
done
ready_s=$(since "$t0")
echo "{\"event\": \"ready\", \"target\": \"$target\", \"docker_run_s\": $run_s, \"ready_s\": $ready_s, \"started_to_ready_s\": $(awk -v a="$ready_s" -v b="$run_s" 'BEGIN { printf "%.2f", a - b }')}"

# One test image of the committed fixture, encoded as PNG by the image's own Pillow.
docker exec -i "$tag" python -c '
import base64, io, json, sys
import numpy as np
from PIL import Image
d = np.load(io.BytesIO(sys.stdin.buffer.read()))
buf = io.BytesIO()
Image.fromarray(d["x_test"][0].squeeze()).save(buf, "PNG")
print(json.dumps({"label": int(d["y_test"][0]), "png": base64.b64encode(buf.getvalue()).decode()}))
' <tests/data/fashion_fixture.npz >"$work/item.json"
label=$(field 'd["label"]' <"$work/item.json")
png_b64=$(field 'd["png"]' <"$work/item.json")
base64 -d <<<"$png_b64" >"$work/item.png"

echo "{\"inputs\": [{\"name\": \"image\", \"datatype\": \"BYTES\", \"shape\": [1], \"data\": [\"$png_b64\"]}], \"parameters\": {\"classification\": 1}}" >"$work/v2.json"
code=$(curl -s -D "$work/v2.headers" -o "$work/v2.out" -w '%{http_code}' -H 'Content-Type: application/json' \
  --data-binary @"$work/v2.json" "$url/v2/models/fashion/infer")
[[ $code == 200 ]] || fail "V2 infer answered $code: $(cat "$work/v2.out")"
v2_index=$(field 'd["outputs"][0]["data"][0].split(":")[1]' <"$work/v2.out")
v2_backend=$(sed -n 's/^X-Model-Backend: *\([a-z]*\).*/\1/ip' "$work/v2.headers")
[[ $v2_index == "$label" ]] || fail "V2 infer says class $v2_index, the image is class $label"
[[ $v2_backend == "$backend" ]] || fail "V2 infer ran on backend '$v2_backend', expected $backend"

code=$(curl -s -o "$work/predict.out" -w '%{http_code}' -H 'Content-Type: image/png' \
  --data-binary @"$work/item.png" "$url/predict?top_k=1")
[[ $code == 200 ]] || fail "/predict answered $code: $(cat "$work/predict.out")"
predict_index=$(field 'd["predictions"][0]["top_k"][0]["index"]' <"$work/predict.out")
predict_backend=$(field 'd["model"]["backend"]' <"$work/predict.out")
[[ $predict_index == "$label" ]] || fail "/predict says class $predict_index, the image is class $label"
[[ $predict_backend == "$backend" ]] || fail "/predict ran on backend '$predict_backend', expected $backend"

code=$(printf 'not an image' | curl -s -o "$work/bad.out" -w '%{http_code}' -H 'Content-Type: image/png' \
  --data-binary @- "$url/predict")
[[ $code == 400 ]] || fail "an undecodable image got $code, expected 400"
field 'd["error"]' <"$work/bad.out" >/dev/null || fail "the 400 carries no JSON error: $(cat "$work/bad.out")"
echo "{\"event\": \"predict\", \"target\": \"$target\", \"backend\": \"$backend\", \"label\": $label, \"v2\": $v2_index, \"predict\": $predict_index, \"bad_image_status\": $code}"

uid=$(docker exec "$tag" id -u)
[[ $uid != 0 ]] || fail "the service runs as root"
tensorflow=$(docker exec "$tag" python -c 'import importlib.util; print(str(importlib.util.find_spec("tensorflow") is not None).lower())')
[[ $target == full || $tensorflow == false ]] || fail "the serve image holds TensorFlow"
if [[ $target == full ]]; then   # what training jobs need: the CLI, Keras 2 and TF-MOT
  docker exec "$tag" sh -c 'python -m training --help && python -c "import training, tf_keras, tensorflow_model_optimization"' \
    >/dev/null 2>&1 || fail "the training CLI or its packages do not load"
fi

t0=$(now)
until [[ $(docker inspect -f '{{.State.Health.Status}}' "$tag") == healthy ]]; do
  [[ $(docker inspect -f '{{.State.Health.Status}}' "$tag") != unhealthy ]] || fail "HEALTHCHECK says unhealthy"
  awk -v s="$(since "$t0")" 'BEGIN { exit !(s > 90) }' && fail "not healthy after 90 s"
  sleep 1
done
echo "{\"event\": \"container\", \"target\": \"$target\", \"uid\": $uid, \"tensorflow\": $tensorflow, \"health\": \"healthy\"}"

graceful=$(docker exec "$tag" python -c 'import runpy; print(runpy.run_path("gunicorn.conf.py")["graceful_timeout"])')
t0=$(now)
docker kill -s TERM "$tag" >/dev/null
exit_code=$(timeout $((graceful + 15)) docker wait "$tag") || fail "still running $((graceful + 15)) s after SIGTERM"
stop_s=$(since "$t0")
[[ $exit_code == 0 ]] || fail "exit code $exit_code after SIGTERM"
awk -v s="$stop_s" -v g="$graceful" 'BEGIN { exit !(s <= g) }' || fail "took $stop_s s to stop, graceful_timeout is $graceful s"
! docker logs "$tag" 2>&1 | grep -q Traceback || fail "a traceback in the container log"
echo "{\"event\": \"stop\", \"target\": \"$target\", \"signal\": \"TERM\", \"exit_code\": $exit_code, \"stop_s\": $stop_s, \"graceful_timeout_s\": $graceful}"
echo "{\"event\": \"smoke\", \"target\": \"$target\", \"ok\": true}"
