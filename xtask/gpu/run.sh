#!/usr/bin/env bash
# The GPU check of a bundle that `cargo xtask gpu-bundle --out DIR` wrote: run it on the
# GPU machine from anywhere, e.g. `DIR/run.sh --out "$OUT"`. No Rust toolchain and no
# network needed there: the CUDA libraries come from the machine's CUDA toolkit or its
# PyTorch installation.
#
#   run.sh [--device cuda|cpu] [--out DIR] [--minutes N] [--bench-steps N] [--runs DIR]
#          [--parts selftest,bench,train] [--preset mnist-wae-mmd]
#
# In order, printing as it goes and writing JSON under --out (default: ./gpu-out):
#   1. nvidia-smi, `wae selftest` (every op and one step of each model family against
#      the CPU; selftest.json);
#   2. the paper-width MNIST WAE-MMD training step in images/s, ours (`wae bench`) and
#      PyTorch's (torch_wae_mmd.py, same sizes, same device), batch 100 and 400,
#      alternating (bench.jsonl);
#   3. `wae train --preset mnist-wae-mmd` (the paper's MNIST WAE-MMD) for the minutes
#      left, stopped by SIGTERM, which writes a checkpoint; its run directory stays in
#      --runs (default: gpu-runs beside the bundle, outside it, so that sending the
#      bundle again does not delete it), and a second call on the same machine resumes
#      it; metrics, evaluation and pictures are copied to --out (train/).
# --device cpu is the dry run on a machine without a GPU (needs the libraries the
# binary links; point WAE_CUDA_LIBS at them, with the driver stub for libcuda.so.1).
# Exit status: 0 when every step ran, 1 when the self-test found a mismatch or a step
# failed (the later steps still run).
set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
device=cuda
out="$PWD/gpu-out"
minutes=9
bench_steps=""
runs="$(dirname "$here")/gpu-runs"
parts="selftest,bench,train"
preset=mnist-wae-mmd
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --minutes) minutes="$2"; shift 2 ;;
        --bench-steps) bench_steps="$2"; shift 2 ;;
        --runs) runs="$2"; shift 2 ;;
        --parts) parts="$2"; shift 2 ;;
        --preset) preset="$2"; shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
if [[ -z "$bench_steps" ]]; then
    if [[ "$device" == cuda ]]; then bench_steps=50; else bench_steps=2; fi
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log="$out/run.log"
status=0
say() { echo "[run.sh $(date -u +%H:%M:%S), ${SECONDS}s] $*" | tee -a "$log"; }
fail() { say "FAILED: $*"; status=1; }
wanted() { [[ ",$parts," == *",$1,"* ]]; }

# --- The CUDA libraries: the toolkit's, else PyTorch's wheels. -------------------------
needed=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10 libnvrtc.so.13)
dirs=()
IFS=: read -r -a extra <<<"${WAE_CUDA_LIBS:-}"
dirs+=("${extra[@]}")
[[ -n "${CUDA_HOME:-}" ]] && dirs+=("$CUDA_HOME/lib64" "$CUDA_HOME/lib")
if command -v nvcc >/dev/null; then
    nvcc_root="$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")"
    dirs+=("$nvcc_root/lib64" "$nvcc_root/lib" "$nvcc_root/targets/x86_64-linux/lib")
fi
for d in /usr/local/cuda-13*/lib64 /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib; do
    dirs+=("$d")
done
python="${WAE_TORCH_PYTHON:-python3}"
site="$("$python" -c 'import site, sys; print(" ".join(site.getsitepackages()))' 2>/dev/null || true)"
for s in $site; do
    for d in "$s"/nvidia/cu13/lib "$s"/nvidia/*/lib "$s"/torch/lib; do dirs+=("$d"); done
done
# WAE_CUDA_LIBS goes on the library path as given (the dry run's driver stub lives there).
libpath="${WAE_CUDA_LIBS:-}"
for lib in "${needed[@]}"; do
    found=""
    for d in "${dirs[@]}"; do
        if [[ -n "$d" && -e "$d/$lib" ]]; then found="$d"; break; fi
    done
    if [[ -n "$found" ]]; then
        say "$lib: $found"
        [[ ":$libpath:" == *":$found:"* ]] || libpath="$libpath:$found"
    else
        say "$lib: not found (searched WAE_CUDA_LIBS, CUDA_HOME, nvcc's toolkit, /usr/local/cuda*, PyTorch's nvidia wheels)"
    fi
done
export LD_LIBRARY_PATH="${libpath#:}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
wae="$here/wae"
if [[ -f "$here/wae.gz" && ! "$wae" -nt "$here/wae.gz" ]]; then
    say "unpacking wae.gz"
    gzip -dc "$here/wae.gz" >"$wae.part" && chmod +x "$wae.part" && mv "$wae.part" "$wae"
fi
if ! "$wae" --version >>"$log" 2>&1; then
    fail "the wae binary does not start; ldd says:"
    ldd "$wae" 2>&1 | grep "not found" | tee -a "$log"
    exit 1
fi

# --- 1. The machine and the self-test. ---------------------------------------------------
if command -v nvidia-smi >/dev/null; then
    nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt"
else
    say "no nvidia-smi on this machine"
fi
lscpu 2>/dev/null | grep -E "Model name|^CPU\(s\)" | tee -a "$log"
if ! wanted selftest; then
    say "self-test left out (--parts $parts)"
else
    say "wae selftest --device $device"
    if "$wae" selftest --device "$device" --json "$out/selftest.json" 2>&1 | tee "$out/selftest.txt"; then
        say "self-test passed"
    else
        fail "self-test (see selftest.txt)"
    fi
fi

# --- 2. The training step against PyTorch. ------------------------------------------------
peer=()
if "$python" -c "import torch" 2>/dev/null; then
    peer=("$python" "$here/torch_wae_mmd.py")
    "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" | tee -a "$log"
else
    say "no PyTorch for $python: the peer's rows are left out (set WAE_TORCH_PYTHON)"
fi
: >"$out/bench.jsonl"
rounds=2
wanted bench || { rounds=0; say "bench left out (--parts $parts)"; }
for round in $(seq 1 $rounds); do
    for batch in 100 400; do
        say "round $round, batch $batch: wae bench"
        "$wae" bench --device "$device" --width-div 1 --batch "$batch" --steps "$bench_steps" \
            >>"$out/bench.jsonl" 2>>"$log" || fail "wae bench batch $batch"
        if [[ ${#peer[@]} -gt 0 ]]; then
            say "round $round, batch $batch: torch_wae_mmd.py"
            "${peer[@]}" --device "$device" --width-div 1 --batch "$batch" --steps "$bench_steps" \
                --threads "$(nproc)" >>"$out/bench.jsonl" 2>>"$log" || fail "PyTorch peer batch $batch"
        fi
    done
done
cat "$out/bench.jsonl"

# --- 3. Training for the minutes left, resumable. ----------------------------------------
run="$runs/$preset"
left=$((minutes * 60 - SECONDS - 60))
if ! wanted train; then
    say "training left out (--parts $parts)"
elif [[ $left -lt 30 ]]; then
    say "no time left for training ($left s)"
else
    if [[ -f "$run/done.json" ]]; then
        say "the training run is complete already"
    else
        if [[ -e "$run/checkpoints/latest" ]]; then
            say "resuming $run for $left s"
            train=("$wae" train --resume "$run" --device "$device" --data-dir "$here/data/mnist")
        else
            say "training $preset for $left s"
            rm -rf "$run"
            mkdir -p "$runs"
            train=("$wae" train --preset "$preset" --device "$device" --out "$run" --data-dir "$here/data/mnist")
        fi
        timeout -s TERM -k 60 "$left" "${train[@]}" 2>&1 | tail -n 40 | tee -a "$log"
        code=${PIPESTATUS[0]}
        case $code in
            0) say "training finished" ;;
            124|143) say "stopped by the time limit; the checkpoint resumes it on the next call" ;;
            *) fail "wae train exited with $code" ;;
        esac
    fi
    mkdir -p "$out/train"
    for f in metrics.jsonl eval.json config.toml done.json; do
        [[ -f "$run/$f" ]] && cp "$run/$f" "$out/train/"
    done
    if [[ -e "$run/checkpoints/latest" ]]; then
        "$wae" plot "$run" --out "$out/train/losses.png" >>"$log" 2>&1 || true
        "$wae" sample "$run" --device "$device" --out "$out/train/samples.png" >>"$log" 2>&1 || true
    fi
fi
say "done, status $status; results in $out"
exit $status
