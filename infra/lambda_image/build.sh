#!/usr/bin/env bash
# Builds a Lambda-compatible python3.12 image offline, for `sam local invoke --invoke-image`
# (AWS's base images cannot be pulled here). Prints the image tag as its last line.
#
#   root filesystem  debootstrap --variant=minbase bookworm, from the Debian mirror apt uses,
#                    plus the shared libraries CPython's extension modules load
#   Python           this machine's Python 3.12 (pyenv's), copied to the same path (its
#                    prefix is compiled in); stdlib only, no site-packages
#   /var/runtime     awslambdaric + boto3, pinned (boto3 family: the versions in .venv — the
#                    ones Lambda's python3.12 runtime ships cannot be known offline)
#   bootstrap        /var/runtime/bootstrap: Lambda's search order (function, layers, then the
#                    runtime's packages), /opt/lib for the layers' native libraries, then
#                    `python -m awslambdaric "$_HANDLER"`
#
# For ZIP functions SAM replaces the entrypoint with its runtime interface emulator
# (/var/rapid/aws-lambda-rie, added on top of this image together with the layers), which runs
# /var/runtime/bootstrap; so the image sets no ENTRYPOINT, only WORKDIR and Lambda's ENV.
# SAM's Dockerfile needs /bin/sh, mv, chmod and cp in the image: minbase has them.
#
# Cached by content hash: the tag is a hash of this script and every input; when an image with
# that tag exists nothing is done. Needs root and a running Docker engine; installs debootstrap
# with apt when it is missing.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
REPOSITORY=${LAMBDA_IMAGE_REPOSITORY:-leadscore-lambda-python3.12}
SUITE=bookworm
PACKAGES=libssl3,libffi8,zlib1g,libsqlite3-0,libbz2-1.0,liblzma5,ca-certificates
# awslambdaric and its own dependencies (simplejson, snapshot-restore-py), exact.
RUNTIME_PINS="awslambdaric==4.2.2 simplejson==4.3.0 snapshot-restore-py==1.0.0"
BOTO3_FAMILY="boto3 botocore s3transfer jmespath python-dateutil six urllib3"
PYTHON312=${PYTHON312:-$("$ROOT/infra/build/find_python312.sh")}
VENV_PYTHON=${VENV_PYTHON:-$ROOT/.venv/bin/python}

say() { echo "lambda-image: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ -x "$VENV_PYTHON" ] || die "no $VENV_PYTHON: run make setup first"
PREFIX=$("$PYTHON312" -c 'import sys; print(sys.base_prefix)')
"$PYTHON312" -c 'import sys, sysconfig; sys.exit(not sysconfig.get_config_var("Py_ENABLE_SHARED"))' \
  || die "$PYTHON312 is not a shared-library build; its prefix could not be copied as is"

# The Debian mirror apt already uses for $SUITE (deb822 .sources or one-line sources.list).
MIRROR=${DEBIAN_MIRROR:-$("$PYTHON312" - "$SUITE" <<'EOF'
import glob, re, sys
suite = sys.argv[1]
for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
    for stanza in re.split(r"\n\s*\n", open(path).read()):
        fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
        if suite in fields.get("Suites", "").split() and "main" in fields.get("Components", "").split():
            print(fields["URIs"].split()[0]); sys.exit()
for path in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        continue
    for line in lines:
        words = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
        if len(words) >= 4 and words[0] == "deb" and words[2] == suite and "main" in words[3:]:
            print(words[1]); sys.exit()
sys.exit(f"no apt source for {suite} main found; set DEBIAN_MIRROR")
EOF
)}

BOTO3_PINS=$("$VENV_PYTHON" -c '
import importlib.metadata as m, sys
print(" ".join(f"{name}=={m.version(name)}" for name in sys.argv[1:]))' $BOTO3_FAMILY)

# Everything the image is made of; its hash is the tag.
INPUTS=$(cat <<EOF
script $(sha256sum "$0" | cut -d' ' -f1)
suite $SUITE
mirror $MIRROR
packages $PACKAGES
python $PREFIX $("$PYTHON312" -c 'import sys; print(sys.version.split()[0])')
python-binaries $(cat "$PREFIX/bin/python3.12" "$PREFIX/lib/libpython3.12.so.1.0" | sha256sum | cut -d' ' -f1)
runtime $RUNTIME_PINS $BOTO3_PINS
EOF
)
TAG="$REPOSITORY:$(echo "$INPUTS" | sha256sum | cut -c1-16)"

docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd; .ci/run does)"
if docker image inspect "$TAG" >/dev/null 2>&1; then
  say "cached: $TAG"
  echo "$TAG"
  exit 0
fi

[ "$(id -u)" = 0 ] || die "debootstrap needs root"
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi

WORK=$(mktemp -d /var/tmp/leadscore-lambda-image.XXXXXX)
# --one-file-system: never into a /proc or /sys a failed debootstrap may have left mounted.
trap 'rm -rf --one-file-system "$WORK"' EXIT
ROOTFS="$WORK/rootfs"

say "debootstrap $SUITE from $MIRROR"
debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$ROOTFS" "$MIRROR" \
  >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
# Nothing installs packages at run time: drop apt's caches and the documentation.
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* \
  "$ROOTFS"/usr/share/doc "$ROOTFS"/usr/share/man "$ROOTFS"/usr/share/info

say "Python $PREFIX (stdlib only)"
mkdir -p "$ROOTFS$PREFIX"
tar -C "$PREFIX" -cf - \
  --exclude=./lib/python3.12/site-packages --exclude=./lib/python3.12/test \
  --exclude=./lib/python3.12/idlelib --exclude=./lib/python3.12/tkinter \
  --exclude=./lib/python3.12/turtledemo --exclude=./lib/python3.12/ensurepip \
  --exclude='./lib/python3.12/config-3.12-*' --exclude=./lib/pkgconfig . \
  | tar -C "$ROOTFS$PREFIX" -xf -
mkdir -p "$ROOTFS$PREFIX/lib/python3.12/site-packages"

say "/var/runtime: $RUNTIME_PINS $BOTO3_PINS"
# shellcheck disable=SC2086 # the pins are separate words
"$VENV_PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --no-compile \
  --only-binary=:all: --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  --python-version 3.12 --implementation cp --abi cp312 \
  --target "$ROOTFS/var/runtime" $RUNTIME_PINS $BOTO3_PINS 2> >(grep -v "is ignored" >&2)
rm -rf "$ROOTFS/var/runtime/bin"
# Bytecode compiled now, with in-image paths, so a cold start does not compile boto3.
"$PYTHON312" -m compileall -q -j 0 -s "$ROOTFS" -p / "$ROOTFS/var/runtime" >/dev/null

cat >"$ROOTFS/var/runtime/bootstrap" <<EOF
#!/bin/sh
# Lambda python3.12 bootstrap for this image (infra/lambda_image/build.sh). Search order as in
# Lambda: the function, then its layers, then the runtime's own packages (boto3).
export PYTHONPATH="/var/task:/opt/python/lib/python3.12/site-packages:/opt/python:/var/runtime"
export LD_LIBRARY_PATH="/opt/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec $PREFIX/bin/python3.12 -m awslambdaric "\$_HANDLER"
EOF
chmod 755 "$ROOTFS/var/runtime/bootstrap"
mkdir -p "$ROOTFS/var/task" "$ROOTFS/opt"

say "docker import $TAG"
tar -C "$ROOTFS" -cf - . | docker import \
  --change 'WORKDIR /var/task' \
  --change "ENV PATH=$PREFIX/bin:/usr/local/bin:/usr/bin:/bin" \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV TZ=:/etc/localtime' \
  --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
  --change 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  --change "LABEL leadscore.lambda-image.inputs=\"$(echo "$INPUTS" | tr '\n' ';')\"" \
  - "$TAG" >/dev/null
echo "$TAG"
