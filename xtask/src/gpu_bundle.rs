//! `cargo xtask gpu-bundle --out DIR`: everything one call on a GPU machine needs, built
//! here: the `wae` binary with `--features cuda` (PTX for one compute capability, by a
//! CUDA 13.0 compiler: the machines' driver series, whose loader rejects newer PTX),
//! stripped and gzipped (`wae.gz`: 65 MiB stripped, mostly candle-kernels' quantized
//! matmul cubins that every CUDA build of candle links; 17 MiB compressed; `run.sh`
//! unpacks it); `run.sh` (`xtask/gpu/run.sh`: finds the CUDA libraries, runs the self-test,
//! the training step against PyTorch and as much paper-width training as the minutes
//! allow); the PyTorch peer; MNIST's four `.gz` files. See docs/gpu.md.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::workspace::{target_dir, workspace_root};

/// The GPU check's script, copied into the bundle.
const RUN_SH: &str = include_str!("../gpu/run.sh");
/// The bundle must travel with a device call (64 MiB in all with the working tree).
const MAX_BUNDLE_BYTES: u64 = 60 << 20;

/// Arguments of `cargo xtask gpu-bundle`.
#[derive(Args, Debug, Clone)]
pub struct GpuBundleArgs {
    /// Folder to write (created; must be empty or absent).
    #[arg(long)]
    out: PathBuf,
    /// The CUDA 13.0 toolkit (bin/nvcc, include/, lib/): CUDA_ROOT, else the one
    /// `scripts/cuda-toolkit.sh` installs under the user's cache directory.
    #[arg(long, env = "CUDA_ROOT")]
    cuda_root: Option<PathBuf>,
    /// Compute capability to write PTX for (90: H100 / H200).
    #[arg(long, default_value_t = 90)]
    compute_cap: u32,
    /// Also link cuDNN (`--features cudnn`; needs cuDNN's headers and libraries in the root).
    #[arg(long)]
    cudnn: bool,
    /// The MNIST folder to pack (default: the data-directory policy of `wae train`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Where `scripts/cuda-toolkit.sh` puts the toolkit, asked from the script itself.
fn default_cuda_root(workspace: &Path) -> Result<PathBuf> {
    let script = workspace.join("scripts/cuda-toolkit.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("--root")
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    if !out.status.success() {
        bail!("{} --root failed", script.display());
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// `nvcc --version`'s release, e.g. `13.0`.
fn nvcc_release(root: &Path) -> Result<String> {
    let nvcc = root.join("bin/nvcc");
    let out = Command::new(&nvcc)
        .arg("--version")
        .output()
        .with_context(|| {
            format!(
                "no CUDA compiler at {}: run scripts/cuda-toolkit.sh (installs CUDA 13.0 from \
             NVIDIA's PyPI wheels under the user's cache directory) or pass --cuda-root",
                nvcc.display()
            )
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("release ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .map(str::to_string)
        .with_context(|| format!("cannot read the release from `nvcc --version`: {text}"))
}

fn copy(from: &Path, to: &Path) -> Result<u64> {
    std::fs::copy(from, to)
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_size(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

/// The build, and the bundle written from it.
pub fn run(args: &GpuBundleArgs) -> Result<()> {
    let workspace = workspace_root();
    let root = match &args.cuda_root {
        Some(r) => r.clone(),
        None => default_cuda_root(&workspace)?,
    };
    let release = nvcc_release(&root)?;
    if release != "13.0" {
        bail!(
            "the CUDA compiler at {} is release {release}; the GPU machines' driver is of the \
             13.0 series and rejects PTX from newer compilers: use a 13.0 toolkit \
             (scripts/cuda-toolkit.sh installs one)",
            root.display()
        );
    }
    if args.out.exists() && std::fs::read_dir(&args.out)?.next().is_some() {
        bail!(
            "{} exists and is not empty: give a new folder",
            args.out.display()
        );
    }
    let mnist = wae_data::MnistSource::resolve(args.data_dir.clone())
        .context("the bundle carries MNIST: pass --data-dir or run `cargo xtask download mnist`")?;

    // The build, in its own target folder so the CPU build's outputs stay as they are.
    let cuda_target = target_dir().join("cuda");
    let features = if args.cudnn { "cuda,cudnn" } else { "cuda" };
    let path = format!(
        "{}:{}",
        root.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    eprintln!(
        "building wae --features {features} with nvcc {release} for compute capability {} \
         (a cold build takes 10-20 minutes on 2 cores)",
        args.compute_cap
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&workspace)
        .args([
            "build",
            "--release",
            "-p",
            "wae-cli",
            "--features",
            features,
        ])
        .arg("--target-dir")
        .arg(&cuda_target)
        .env("PATH", path)
        .env("CUDA_ROOT", &root)
        .env("CUDA_PATH", &root)
        .env("CUDA_COMPUTE_CAP", args.compute_cap.to_string())
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("the CUDA build failed (see above)");
    }

    std::fs::create_dir_all(args.out.join("data/mnist"))?;
    let binary = args.out.join("wae");
    copy(&cuda_target.join("release/wae"), &binary)?;
    let strip = Command::new("strip").arg(&binary).status();
    if !matches!(strip, Ok(s) if s.success()) {
        eprintln!("warning: `strip` failed or is missing: the binary keeps its symbols");
    }
    let binary_size = std::fs::metadata(&binary)?.len();
    // gzip -9 -n: no name or time stamp in the header, so the same binary packs the same.
    let status = Command::new("gzip")
        .args(["-9", "-n"])
        .arg(&binary)
        .status()
        .context("cannot run gzip")?;
    if !status.success() {
        bail!("gzip {} failed", binary.display());
    }
    let commit = Command::new("git")
        .current_dir(&workspace)
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let header = format!(
        "# bundle: commit {commit}, wae --features {features}, nvcc {release}, compute capability {}\n",
        args.compute_cap
    );
    let script = RUN_SH.replacen('\n', &format!("\n{header}"), 1);
    let run_sh = args.out.join("run.sh");
    std::fs::write(&run_sh, script)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&run_sh, std::fs::Permissions::from_mode(0o755))?;
    }
    copy(
        &workspace.join("xtask/peers/torch_wae_mmd.py"),
        &args.out.join("torch_wae_mmd.py"),
    )?;
    for (name, _md5) in wae_data::MNIST_FILES {
        let gz = mnist.join(format!("{name}.gz"));
        let raw = mnist.join(name);
        let (from, to) = if gz.exists() {
            (gz, args.out.join(format!("data/mnist/{name}.gz")))
        } else {
            (raw, args.out.join(format!("data/mnist/{name}")))
        };
        copy(&from, &to)?;
    }
    let size = dir_size(&args.out)?;
    let packed = std::fs::metadata(args.out.join("wae.gz"))?.len();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{}: {:.1} MiB (wae {:.1} MiB stripped, {:.1} MiB gzipped; --features {features}, nvcc \
         {release}, sm_{}, commit {commit})",
        args.out.display(),
        mib(size),
        mib(binary_size),
        mib(packed),
        args.compute_cap
    );
    if size > MAX_BUNDLE_BYTES {
        bail!(
            "the bundle is {:.1} MiB, over the {} MiB a device call carries",
            size as f64 / (1 << 20) as f64,
            MAX_BUNDLE_BYTES >> 20
        );
    }
    println!(
        "run it on the GPU machine: {}/run.sh --out \"$OUT\"  (dry run here: --device cpu)",
        args.out.display()
    );
    Ok(())
}
