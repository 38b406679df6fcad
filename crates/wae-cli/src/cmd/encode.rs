//! `wae encode`: the codes of a split's images (and their labels) as safetensors.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;

use crate::pictures::{self, Network, RunArgs, SplitArg};

/// Arguments of `wae encode`.
#[derive(Debug, Args)]
#[command(
    after_help = "The file holds `codes` (N, d_z) f32 (the encoder's mean in evaluation \
    mode), `labels` (N,) u8, `indices` (N,) u32 (positions in the split) and, for Gaussian \
    encoders, `logvar` (N, d_z) f32; its metadata names the run, checkpoint, step and split.\n\n\
    Examples:\n  \
    wae encode runs/mmd --split test --out codes.safetensors\n  \
    wae encode runs/mmd --split train --n 5000      # -> runs/mmd/codes-train.safetensors"
)]
pub struct EncodeArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// Which split to encode.
    #[arg(long, value_enum, default_value = "test")]
    pub split: SplitArg,
    /// Encode only the first N images (default: all).
    #[arg(long)]
    pub n: Option<usize>,
    /// Output file (default: RUN/codes-SPLIT.safetensors, SPLIT the --split given).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn tensor_bytes(t: &Tensor) -> Result<(safetensors::Dtype, Vec<usize>, Vec<u8>)> {
    let shape = t.dims().to_vec();
    Ok(match t.dtype() {
        DType::U8 => (
            safetensors::Dtype::U8,
            shape,
            t.flatten_all()?.to_vec1::<u8>()?,
        ),
        DType::U32 => (
            safetensors::Dtype::U32,
            shape,
            t.flatten_all()?
                .to_vec1::<u32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        _ => (
            safetensors::Dtype::F32,
            shape,
            t.to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
    })
}

/// Runs `wae encode`.
pub fn run(args: EncodeArgs) -> Result<()> {
    let run = pictures::load_run(&args.run, "encode", &[Network::Encoder])?;
    let out = run.output_path(
        args.out.as_deref(),
        &format!("codes-{}.safetensors", args.split.name()),
    );
    let _lock = pictures::claim_output(&run.run_dir, &out, "wae encode")?;
    let data = run.data(args.split, args.run.data_dir.as_deref(), args.n)?;
    let indices: Vec<usize> = (0..data.len()).collect();
    let (codes, logvar) = run.encode(&data, &indices)?;
    let mut tensors: Vec<(String, Tensor)> = vec![
        ("codes".into(), codes.clone()),
        (
            "labels".into(),
            Tensor::from_vec(data.labels().to_vec(), data.len(), &Device::Cpu)?,
        ),
        (
            "indices".into(),
            Tensor::from_vec(
                indices.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                data.len(),
                &Device::Cpu,
            )?,
        ),
    ];
    if let Some(lv) = logvar {
        tensors.push(("logvar".into(), lv));
    }
    let buffers = tensors
        .iter()
        .map(|(k, t)| tensor_bytes(t).map(|b| (k.clone(), b)))
        .collect::<Result<Vec<_>>>()?;
    let views = buffers
        .iter()
        .map(|(k, (dtype, shape, bytes))| {
            safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                .map(|v| (k.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .context("while laying out the tensors")?;
    let mut metadata = HashMap::new();
    metadata.insert("run".to_string(), run.run_dir.display().to_string());
    metadata.insert(
        "checkpoint".to_string(),
        run.checkpoint_dir.display().to_string(),
    );
    metadata.insert("step".to_string(), run.step.to_string());
    metadata.insert("split".to_string(), args.split.name().to_string());
    metadata.insert(
        "codes".to_string(),
        "encoder mean, evaluation mode (BatchNorm running statistics)".to_string(),
    );
    metadata.insert(
        "objective".to_string(),
        run.cfg.objective.name().to_string(),
    );
    let bytes = safetensors::serialize(views, Some(metadata)).context("while serialising")?;
    wae_viz::write_atomic(&out, &bytes).context("while saving the codes")?;
    let (n, d) = codes.dims2()?;
    println!(
        "wrote {} ({n} {} codes of dimension {d} with labels, step {})",
        out.display(),
        args.split.name(),
        run.step
    );
    Ok(())
}
