#!/usr/bin/env bash
# install-data.sh installs the real data sets the built-in methods train on
# (charlm, ngram and imgmlp) and writes the KJV text where they look for it.
# It is idempotent: installed packages and a kjv.txt of the right size are
# left alone. Data is never committed; CI and developers run this instead.
#
# Usage: scripts/install-data.sh [DIR]
#   DIR defaults to $ASYMPTOTE_DATA_DIR, then /var/lib/asymptote/data as
#   root or ~/.cache/asymptote/data otherwise.
set -euo pipefail

# KJV_SIZE and KJV_SHA256 describe `bible -l79 'Gen1:1-Rev22:21'` from
# bible-kjv 4.38; the methods check the size, this script both.
KJV_SIZE=4298239
KJV_SHA256=82fa5f3788c6a9a010fb128a0f0bf588984b5888a82058520620eded59b033ea
FASHION_DIR=/usr/share/datasets/fashion-mnist

if [[ $# -gt 0 ]]; then
	DIR=$1
elif [[ -n ${ASYMPTOTE_DATA_DIR:-} ]]; then
	DIR=$ASYMPTOTE_DATA_DIR
elif [[ $(id -u) -eq 0 ]]; then
	DIR=/var/lib/asymptote/data
else
	DIR=${XDG_CACHE_HOME:-$HOME/.cache}/asymptote/data
fi

log() { printf 'install-data: %s\n' "$*" >&2; }

need=()
command -v bible >/dev/null 2>&1 || need+=(bible-kjv)
ls "$FASHION_DIR"/train-images-idx3-ubyte.gz >/dev/null 2>&1 || need+=(dataset-fashion-mnist)

if [[ ${#need[@]} -gt 0 ]]; then
	sudo=()
	if [[ $(id -u) -ne 0 ]]; then
		command -v sudo >/dev/null 2>&1 || { log "need root to install ${need[*]}"; exit 1; }
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Refresh the package lists only when apt does not know a package yet.
	for p in "${need[@]}"; do
		if ! apt-cache show "$p" >/dev/null 2>&1; then
			log "apt-get update"
			"${sudo[@]}" apt-get update -qq
			break
		fi
	done
	log "apt-get install ${need[*]}"
	"${sudo[@]}" apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$DIR"
kjv=$DIR/kjv.txt
size() { stat -c %s "$1" 2>/dev/null || echo 0; }
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
if [[ $(size "$kjv") -ne $KJV_SIZE || $(sha "$kjv") != "$KJV_SHA256" ]]; then
	log "writing $kjv"
	# Pin the line width: bible prints nothing when COLUMNS is set but empty.
	COLUMNS=79 bible -l79 'Gen1:1-Rev22:21' >"$kjv.tmp"
	got=$(size "$kjv.tmp") sum=$(sha "$kjv.tmp")
	if [[ $got -ne $KJV_SIZE || $sum != "$KJV_SHA256" ]]; then
		log "$kjv.tmp has $got bytes, sha256 $sum; want $KJV_SIZE bytes, sha256 $KJV_SHA256 (bible-kjv 4.38)"
		exit 1
	fi
	mv "$kjv.tmp" "$kjv"
fi

for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
	[[ -s $FASHION_DIR/$f ]] || { log "missing $FASHION_DIR/$f after installing dataset-fashion-mnist"; exit 1; }
done
log "data ready: $kjv, $FASHION_DIR"
