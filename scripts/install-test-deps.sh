#!/usr/bin/env bash
# Installs the server binaries the chaos suite (test/chaos) runs as real
# OS processes: Debian's nats-server and etcd-server (and etcd-client for
# etcdctl, handy when something goes wrong), the Python runtime of the
# Python method plugins (python3-grpcio, python3-protobuf, python3-torch),
# and what the Python client's tests use (python3-pandas, python3-pytest,
# python3-pip, python3-setuptools), and the one-node SLURM cluster the
# provisioner's test starts (slurm-wlm, munge).
# Idempotent: it does nothing when the binaries are already on PATH and
# Debian's python3 imports the modules.
#
# As root it installs them with apt-get (running `apt-get update` once if
# the package lists are empty or stale). Otherwise it prints what to install
# and exits non-zero, so a test run never silently skips the cluster tests.
set -euo pipefail

missing=()
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v etcdctl >/dev/null 2>&1 || missing+=(etcd-client)
# The Python method plugins (plugins/python: the SDK and torch_charlm) run
# on Debian's /usr/bin/python3 with these modules; their Go tests fail,
# never skip, without them.
py_has() { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c "import $1" >/dev/null 2>&1; }
py_has grpc || missing+=(python3-grpcio)
py_has google.protobuf || missing+=(python3-protobuf)
py_has torch || missing+=(python3-torch)
# The Python client (clients/python) runs its pytest suite against a real
# asymptote dev on pandas; its packaging test installs it, and the method
# SDK, with pip and setuptools.
py_has pandas || missing+=(python3-pandas)
py_has pytest || missing+=(python3-pytest)
py_has pip || missing+=(python3-pip)
py_has setuptools || missing+=(python3-setuptools)
# The dashboard's browser tests drive Debian's headless Chromium.
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The SLURM provisioner's test (slurm/real_test.go) starts a one-node SLURM
# cluster on loopback as root: munged, slurmctld and slurmd, with sbatch,
# squeue, scancel and srun.
command -v slurmctld >/dev/null 2>&1 || missing+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || missing+=(munge)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${missing[*]}; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-deps: missing ${missing[*]} and no apt-get on this machine;" >&2
  echo "  install nats-server (2.9 or newer) and etcd (3.4 or newer) so that 'nats-server' and 'etcd' are on PATH," >&2
  echo "  and grpcio 1.51, protobuf 3.21, torch 1.13, pandas 1.5, pytest, pip and setuptools (or newer) for /usr/bin/python3" >&2
  exit 1
fi

echo "== installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends "${missing[@]}"; then
  apt-get update
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The Debian packages enable system services; the tests start their own
# servers on other ports and never use these.
for svc in etcd nats-server munge slurmctld slurmd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" || true
  fi
done
