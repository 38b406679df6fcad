//! `wae init`: a commented config for the user's own data, or any preset as TOML.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use wae_nets::Architecture;
use wae_objectives::{ObjectiveConfig, VaeConfig, WaeGanConfig};
use wae_train::{DatasetKind, TrainConfig};

/// Arguments of `wae init`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    wae init --data images:photos/ --model wae-mmd --size 64 > my.toml\n  \
    wae init --data arrays:faces.npz --model vae > my.toml\n  \
    wae init --data hub:user/faces --files data/train-00000-of-00001.parquet > my.toml\n  \
    wae init --preset mnist-wae-mmd > mnist.toml\n\
    Then: wae train --config my.toml --out runs/my; wae eval runs/my")]
pub struct InitArgs {
    /// The data: `images:DIR` (a folder of PNG / JPEG / BMP / WebP, searched
    /// recursively), `arrays:FILE` (.npy / .npz) or `hub:REPO` (a Hugging Face dataset).
    #[arg(long, value_name = "KIND:WHERE", conflicts_with = "preset")]
    pub data: Option<String>,
    /// Print this preset as TOML instead (see `wae train --list-presets`).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// The model.
    #[arg(long, value_enum, default_value = "wae-mmd")]
    pub model: InitModel,
    /// Side of the square images (default: the array's side, else 64).
    #[arg(long)]
    pub size: Option<usize>,
    /// 1 (grey) or 3 (RGB) (default: from the first image / the array, else 3).
    #[arg(long)]
    pub channels: Option<usize>,
    /// Networks: `dcgan` (convolutional; side a multiple of 16) or `fc` (fully connected,
    /// small images). Default: dcgan when the side allows it.
    #[arg(long, value_enum)]
    pub net: Option<InitNet>,
    /// Divide every layer's width by this (1: the paper's width; 4 or 8 for a CPU).
    #[arg(long, default_value_t = 1)]
    pub width_div: usize,
    /// Hub: parquet files of the training data in the repository (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub files: Vec<String>,
}

/// Models `wae init` writes configs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitModel {
    /// WAE with the MMD penalty (IMQ kernel).
    WaeMmd,
    /// WAE with the adversarial penalty.
    WaeGan,
    /// VAE.
    Vae,
    /// beta-VAE with beta = 4.
    BetaVae,
}

/// Network families for own data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InitNet {
    /// The CelebA DCGAN nets at the data's size.
    Dcgan,
    /// Fully connected 1200-unit nets.
    Fc,
}

/// Runs `wae init`: prints the config on stdout.
pub fn run(args: InitArgs) -> Result<()> {
    print!("{}", render(&args)?);
    Ok(())
}

/// The commented TOML `wae init` prints.
pub fn render(args: &InitArgs) -> Result<String> {
    if let Some(name) = &args.preset {
        let cfg = wae_train::preset(name).context("while choosing the preset")?;
        let mut out = format!(
            "# The preset {name} (`wae init --preset {name}`).\n# {}\n\
             # Train it with: wae train --config THIS_FILE --out runs/{name}\n\n",
            cfg.description
        );
        out.push_str(&cfg.to_toml_string()?);
        return Ok(out);
    }
    let Some(data) = &args.data else {
        bail!(
            "say what to configure: --data images:DIR | arrays:FILE | hub:REPO, or --preset NAME"
        );
    };
    let Some((kind, place)) = data.split_once(':') else {
        bail!("--data {data}: expected KIND:WHERE, e.g. images:photos/ or arrays:faces.npz");
    };
    let (dataset, guess) = match kind {
        "images" => {
            let dir = PathBuf::from(place);
            let listing = wae_data::images::list_folder(&dir)
                .with_context(|| format!("while looking at --data {data}"))?;
            (
                DatasetKind::Images,
                first_image_shape(&dir.join(&listing.files[0])),
            )
        }
        "arrays" => (DatasetKind::Arrays, Some(array_shape(Path::new(place))?)),
        "hub" => {
            if args.files.is_empty() {
                bail!(
                    "--data hub:{place} needs --files (the dataset's parquet files, e.g. \
                     --files data/train-00000-of-00001.parquet)"
                );
            }
            (DatasetKind::Hub, None)
        }
        other => bail!("--data {data}: unknown kind `{other}` (images, arrays or hub)"),
    };
    let (guess_channels, guess_side) = guess.unwrap_or((3, 64));
    let channels = args.channels.unwrap_or(guess_channels);
    let size = args.size.unwrap_or(if dataset == DatasetKind::Arrays {
        guess_side
    } else {
        64
    });
    if channels != 1 && channels != 3 {
        bail!("--channels must be 1 or 3, got {channels}");
    }
    let net = args
        .net
        .unwrap_or(if size.is_multiple_of(16) && size >= 32 {
            InitNet::Dcgan
        } else {
            InitNet::Fc
        });
    let (base, architecture) = match net {
        InitNet::Dcgan => {
            if !size.is_multiple_of(16) {
                bail!(
                    "--net dcgan needs a side that is a multiple of 16 (32, 64, 128), got --size \
                     {size}; pick such a --size (images are resized) or --net fc"
                );
            }
            let base = match args.model {
                InitModel::WaeMmd => "celeba-wae-mmd",
                InitModel::WaeGan => "celeba-wae-gan",
                InitModel::Vae | InitModel::BetaVae => "celeba-vae",
            };
            (
                base,
                Architecture::Dcgan {
                    channels,
                    side: size,
                },
            )
        }
        InitNet::Fc => {
            let base = match args.model {
                InitModel::WaeMmd | InitModel::WaeGan => "dsprites-wae-mmd-det",
                InitModel::Vae => "dsprites-vae",
                InitModel::BetaVae => "dsprites-beta-vae-4",
            };
            (
                base,
                Architecture::Fc {
                    channels,
                    side: size,
                },
            )
        }
    };
    let mut cfg: TrainConfig = wae_train::preset(base)?;
    cfg.description = format!(
        "{} on {data} ({channels}x{size}x{size}), from the preset {base}",
        match args.model {
            InitModel::WaeMmd => "WAE-MMD",
            InitModel::WaeGan => "WAE-GAN",
            InitModel::Vae => "VAE",
            InitModel::BetaVae => "beta-VAE (beta 4)",
        }
    );
    match (args.model, &mut cfg.objective) {
        (InitModel::WaeGan, o) if !matches!(o, ObjectiveConfig::WaeGan(_)) => {
            *o = ObjectiveConfig::WaeGan(WaeGanConfig::default());
        }
        (InitModel::BetaVae, ObjectiveConfig::Vae(VaeConfig { beta, .. })) => *beta = 4.0,
        _ => {}
    }
    cfg.model.encoder.architecture = architecture;
    cfg.model.decoder.architecture = architecture;
    cfg.model.encoder.width_div = args.width_div;
    cfg.model.decoder.width_div = args.width_div;
    cfg.data = wae_train::DataConfig {
        dataset,
        // Absolute, so the config works from any directory.
        path: (dataset != DatasetKind::Hub).then(|| {
            let p = PathBuf::from(place);
            p.canonicalize().unwrap_or(p)
        }),
        repo: (dataset == DatasetKind::Hub).then(|| place.to_string()),
        files: args.files.clone(),
        size: Some(size),
        channels: Some(channels),
        test_fraction: Some(wae_train::DEFAULT_TEST_FRACTION),
        split_seed: Some(wae_train::DEFAULT_SPLIT_SEED),
        ..wae_train::DataConfig::default()
    };
    cfg.validate()
        .context("the config wae init made does not validate")?;
    let toml = cfg.to_toml_string()?;
    let mut out = String::new();
    out.push_str(&format!(
        "# {}\n# Made by: wae init {}\n# Train: wae train --config THIS_FILE --out runs/NAME\n\
         # Then: wae eval runs/NAME; wae sample runs/NAME; wae reconstruct runs/NAME\n\
         # Every key not written here takes its default; unknown keys are errors.\n\n",
        cfg.description,
        std::env::args().skip(2).collect::<Vec<_>>().join(" ")
    ));
    for line in toml.lines() {
        if let Some(comment) = section_comment(line) {
            out.push_str(comment);
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

/// A comment put above a TOML section header.
fn section_comment(line: &str) -> Option<&'static str> {
    Some(match line.trim() {
        "[data]" => {
            "# The data. Images are converted to `channels`, centre-cropped and resized to\n\
             # size x size, decoded once into a cache (WAE_CACHE_DIR or the user's cache dir).\n\
             # test_fraction of them (drawn with split_seed) is the test set; or set\n\
             # test_path to a separate folder / file. skip_bad_images = true leaves out\n\
             # unreadable files instead of stopping. Class subfolders become labels.\n"
        }
        "[model.encoder]" => {
            "# The encoder. architecture must match the data: { dcgan = { channels, side } }\n\
             # (side a multiple of 16) or { fc = { channels, side } }. width_div divides every\n\
             # layer's width (1 = paper width; 4 or 8 train much faster on a CPU).\n"
        }
        "[model.decoder]" => "# The decoder: same architecture and width_div as the encoder.\n",
        "[training]" => {
            "# Run length: epochs (or max_steps), batch size, how often to log and save.\n"
        }
        _ => return None,
    })
}

/// (channels, side) of the first image: grey or colour, and its shorter side.
fn first_image_shape(path: &Path) -> Option<(usize, usize)> {
    let image = image::ImageReader::open(path)
        .ok()?
        .with_guessed_format()
        .ok()?
        .decode()
        .ok()?;
    let channels = if image.color().has_color() { 3 } else { 1 };
    Some((channels, image.width().min(image.height()) as usize))
}

/// (channels, side) of an image array from its header.
fn array_shape(path: &Path) -> Result<(usize, usize)> {
    let is_npz = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    let header = if is_npz {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let mut archive = zip::ZipArchive::new(file)
            .with_context(|| format!("{}: not a readable .npz", path.display()))?;
        let name = ["images", "imgs", "x", "arr_0"]
            .iter()
            .map(|n| format!("{n}.npy"))
            .find(|n| archive.index_for_name(n).is_some())
            .with_context(|| {
                format!(
                    "{}: no images / imgs / x / arr_0 array inside (set data.array in the config)",
                    path.display()
                )
            })?;
        let mut entry = archive.by_name(&name)?;
        wae_data::npy::read_header(&mut entry)?
    } else {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        wae_data::npy::read_header(&mut BufReader::new(file))
            .with_context(|| format!("reading {}", path.display()))?
    };
    match header.shape.as_slice() {
        &[_, h, _] => Ok((1, h)),
        &[_, h, _, c] => Ok((c, h)),
        other => bail!(
            "{}: shape {other:?}, expected (N, H, W) or (N, H, W, C)",
            path.display()
        ),
    }
}
