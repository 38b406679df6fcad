#!/usr/bin/env bash
# Installs the CUDA 13.0 compiler, headers and libraries that `--features cuda` builds
# need, from NVIDIA's PyPI wheels, into a venv under the user's cache directory, and
# prints the CUDA root to build with (`cargo xtask gpu-bundle` finds it by itself).
#
#   scripts/cuda-toolkit.sh            # install (once) and print CUDA_ROOT=...
#   scripts/cuda-toolkit.sh --root     # print only the root (nothing installed)
#
# Why 13.0: the GPU machines run a driver of the CUDA 13.0 series, and PTX written by a
# newer compiler does not load on an older driver. Why wheels: they need no root and no
# NVIDIA apt repository. The wheels ship the versioned libraries only, so this script adds
# the unversioned names the linker looks for, and a stub `libcuda.so` (the driver's API,
# built here from the functions `cuda.h` declares, soname `libcuda.so.1`): the real
# driver library is what loads at run time, exactly as with the toolkit's own stubs.
#
# Location: $WAE_CUDA_TOOLKIT, else ${XDG_CACHE_HOME:-$HOME/.cache}/wae/cuda-13.0.
# Needs python3 (venv, pip), gcc, and about 1.3 GB of disk.
set -euo pipefail

venv="${WAE_CUDA_TOOLKIT:-${XDG_CACHE_HOME:-$HOME/.cache}/wae/cuda-13.0}"
root_of() {
    local site
    site=$(ls -d "$venv"/lib/python3*/site-packages 2>/dev/null | head -n 1)
    echo "${site:-$venv/lib/python3/site-packages}/nvidia/cu13"
}

if [[ "${1:-}" == "--root" ]]; then
    root_of
    exit 0
fi

# The 13.0 releases of each wheel (cuBLAS 13.0 and cuRAND 10.4.0 ship with CUDA 13.0).
# nvcc's own dependencies (nvvm: the compiler that writes the PTX, crt: its headers) are
# pinned too: left free, pip takes the newest release, whose PTX a 13.0 driver rejects.
packages=(
    "nvidia-cuda-nvcc==13.0.88"
    "nvidia-nvvm==13.0.88"
    "nvidia-cuda-crt==13.0.88"
    "nvidia-cuda-runtime==13.0.96"
    "nvidia-cuda-cccl==13.0.85"
    "nvidia-cuda-nvrtc==13.0.88"
    "nvidia-cublas==13.0.2.14"
    "nvidia-curand==10.4.0.35"
)

if [[ ! -x "$venv/bin/pip" ]]; then
    echo "creating $venv" >&2
    python3 -m venv "$venv"
fi
echo "installing ${packages[*]} (about 1.3 GB)" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "${packages[@]}"

root=$(root_of)
[[ -x "$root/bin/nvcc" ]] || { echo "error: no nvcc under $root after the install" >&2; exit 1; }
release=$("$root/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[[ "$release" == "13.0" ]] || { echo "error: nvcc under $root is release $release, not 13.0" >&2; exit 1; }

# Unversioned names for the linker (cudarc links cuda, cublas, cublasLt, curand, nvrtc;
# candle-kernels links cudart).
lib="$root/lib"
for name in cudart cublas cublasLt curand nvrtc; do
    versioned=$(cd "$lib" && ls "lib$name.so."* 2>/dev/null | grep -E "^lib$name\.so\.[0-9]+$" | head -n 1 || true)
    [[ -n "$versioned" ]] || { echo "error: no lib$name.so.N in $lib" >&2; exit 1; }
    ln -sfn "$versioned" "$lib/lib$name.so"
done

# The driver stub: one empty function per `cu*` name in cuda.h, the versioned names its
# macros map the API to included (`#define cuMemAlloc cuMemAlloc_v2`: the binary links
# cuMemAlloc_v2). Only the linker reads it; at run time the dynamic loader resolves
# libcuda.so.1 to the driver.
stubs="$lib/stubs"
mkdir -p "$stubs"
if [[ ! -f "$stubs/libcuda.so" || "$root/include/cuda.h" -nt "$stubs/libcuda.so" || "$0" -nt "$stubs/libcuda.so" ]]; then
    src=$(mktemp --suffix .c)
    grep -oE '\bcu[A-Z][A-Za-z0-9_]*' "$root/include/cuda.h" | sort -u |
        awk '{ printf "int %s(void) { return 999; }\n", $1 }' >"$src"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$src"
    rm -f "$src"
fi
# Under its run-time name too, for dry runs of a CUDA build on a machine without a driver
# (`run.sh --device cpu` with WAE_CUDA_LIBS=<root>/lib:<root>/lib/stubs): the binary then
# starts, and every CUDA call fails (cuInit returns an error), so only --device cpu works.
# Never put this folder on the library path of a machine with a GPU.
ln -sfn libcuda.so "$stubs/libcuda.so.1"

echo "CUDA_ROOT=$root"
