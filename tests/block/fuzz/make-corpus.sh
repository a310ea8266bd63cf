#!/bin/sh
# Regenerates the fuzz-image seed corpus with Debian's qemu-img and qemu-io:
# one small image per on-disk feature the block layer parses.  The images are
# committed; run this only to refresh them.  Usage: make-corpus.sh [DIR]
set -e
dir=${1:-$(dirname "$0")/corpus}
mkdir -p "$dir"
cd "$dir"
rm -f ./*.qcow2 ./*.parallels ./*.img
io() { qemu-io "$@" >/dev/null; }
mk() { qemu-img create -q "$@"; }

mk -f qcow2 -o compat=0.10,cluster_size=512 v2.qcow2 64K
io -c "write -P 0x11 0 1k" -c "write -P 0x22 8k 512" v2.qcow2

mk -f qcow2 -o compat=1.1,cluster_size=512 v3-snapshot.qcow2 64K
io -c "write -P 0x33 0 1k" v3-snapshot.qcow2
qemu-img snapshot -c s1 v3-snapshot.qcow2
io -c "write -P 0x44 512 1k" -c "discard 4k 512" v3-snapshot.qcow2

mk -f qcow2 -o compat=1.1,cluster_size=512 v3-bitmap.qcow2 64K
qemu-img bitmap --add --granularity 512 v3-bitmap.qcow2 b0
io -c "write -P 0x55 1k 2k" v3-bitmap.qcow2

mk -f qcow2 -o compat=1.1,cluster_size=512 v3-compressed.qcow2 64K
io -c "write -c -P 0x66 0 512" -c "write -c -P 0x67 2k 512" -c "write -z 4k 512" \
   v3-compressed.qcow2

mk -f qcow2 -o compat=1.1,cluster_size=512,lazy_refcounts=on v3-lazy.qcow2 64K
io -c "write -P 0x12 0 512" v3-lazy.qcow2

# extended L2 entries need 16 KiB clusters, the largest seed (96 KiB)
mk -f qcow2 -o compat=1.1,cluster_size=16k,extended_l2=on ext-l2.qcow2 256K
io -c "write -P 0x77 0 1k" -c "write -z 2k 2k" -c "write -P 0x78 8k 1k" ext-l2.qcow2

mk -f parallels -o cluster_size=4k p.parallels 64K
io -f parallels -c "write -P 0x88 0 4k" -c "write -P 0x89 20k 1k" p.parallels

printf 'raw image bytes\n' > raw.img
