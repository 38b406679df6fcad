//! dSprites (Matthey et al. 2017): 64x64 binary images of one sprite, made from five
//! factors: shape (square, ellipse, heart), scale (6 values in `[0.5, 1]`), orientation
//! (40 values in `[0, 2 pi]`), x and y position (32 values each in `[0, 1]`); colour is
//! constant. All 3 * 6 * 40 * 32 * 32 = 737,280 combinations make the official file.
//!
//! Two sources with the same factors and layout:
//! - [`Dsprites::load_npz`] / [`Dsprites::load_npz_subset`] read the official
//!   `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz` (arrays `imgs` `(N, 64, 64)` u8 0/1,
//!   `latents_values` `(N, 6)` f64, `latents_classes` `(N, 6)` i64; a zip of `.npy` files,
//!   stored or deflated). A subset streams through the file and keeps only its rows.
//! - [`Dsprites::generate`] renders the images procedurally, so tests and CPU runs work
//!   offline ([`render_sprite`] draws one).
//!
//! How the renderer relates to the original. The original was drawn with vector graphics
//! in Love2D on a canvas of normalised size 1 and rasterised to 64x64 without
//! antialiasing (the data set author's description in the dsprites-dataset issue
//! tracker); its exact shape sizes, heart outline and position range are not published.
//! Ours follows the same recipe with constants of our own choosing, so **its pixels are
//! not expected to equal the official file's**:
//! - a shape is defined in a unit frame (`u` right, `v` down): the square
//!   `max(|u|, |v|) <= 1/2`, the ellipse `(2u)^2 + (4v)^2 <= 1` (2:1, long axis along `u`),
//!   and the heart `(X^2 + Y^2 - 1)^3 <= X^2 Y^3` (the classic algebraic heart, point
//!   down), scaled to a width of 1 and centred on its bounding box;
//! - the frame is scaled by `scale * `[`SPRITE_EXTENT_PX`] (20 px: the square's side at
//!   scale 1), rotated by the orientation (clockwise on screen, since rows grow
//!   downwards), and its centre placed at column `16 + 31 posX`, row `16 + 31 posY`
//!   (one pixel per position step, the whole sprite always inside the image);
//! - pixel `(row, col)` is on (1) when its centre `(col + 0.5, row + 0.5)` lies in the
//!   shape, else off (0). At orientation 0 the square at scale `s` covers exactly
//!   `(20 s)^2` pixels: 100, 144, 196, 256, 324, 400.
//!
//! As in the official file, orientation index 0 (angle 0) and 39 (angle `2 pi`) draw the
//! same image.
//!
//! In a [`Dataset`] the pixels are stored as 0 / 255, so batches are in `{0, 1}`; the label
//! of an image is its shape class.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use rand::Rng;
use rand::rngs::StdRng;

use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::npy::{NpyHeader, read_header_message};

/// Side of a dSprites image in pixels.
pub const DSPRITES_SIDE: usize = 64;

/// Number of images in the official file (every factor combination once).
pub const DSPRITES_LEN: usize = 737_280;

/// Official file name.
pub const DSPRITES_FILE: &str = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz";

/// Names of the six latent columns of the official file, in order.
pub const DSPRITES_LATENT_NAMES: [&str; 6] =
    ["color", "shape", "scale", "orientation", "posX", "posY"];

/// Number of values of each of the six latent columns (colour is constant).
pub const DSPRITES_LATENT_SIZES: [usize; 6] = [1, 3, 6, 40, 32, 32];

/// Names of the five factors that vary (the latents without colour), in order.
pub const DSPRITES_FACTOR_NAMES: [&str; 5] = ["shape", "scale", "orientation", "posX", "posY"];

/// Number of values of each of the five factors that vary: `[3, 6, 40, 32, 32]`.
pub const DSPRITES_FACTOR_SIZES: [usize; 5] = [3, 6, 40, 32, 32];

/// Side in pixels of the square at scale 1 (our renderer's choice, see the module docs).
pub const SPRITE_EXTENT_PX: f64 = 20.0;

/// Column (row) of the sprite's centre at `posX = 0` (`posY = 0`), in pixels.
pub const POSITION_START_PX: f64 = 16.0;

/// Pixels the sprite's centre travels from position 0 to position 1 (31: one per step).
pub const POSITION_TRAVEL_PX: f64 = 31.0;

/// Largest |x| of the heart `(x^2 + y^2 - 1)^3 = x^2 y^3` (checked in a test).
const HEART_HALF_WIDTH: f64 = 1.139_028_164_686_316;
/// Largest y of the heart (its lowest is -1), checked in a test.
const HEART_TOP: f64 = 1.236_659_170_012_161;

/// `numpy.linspace(start, stop, num)[i]` exactly as numpy computes it
/// (`i * step + start`, the last value set to `stop`).
pub fn linspace_value(start: f64, stop: f64, num: usize, i: usize) -> f64 {
    if num <= 1 {
        return start;
    }
    if i + 1 == num {
        return stop;
    }
    let step = (stop - start) / (num - 1) as f64;
    i as f64 * step + start
}

/// The sprite's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DspritesShape {
    /// Class 0 (latent value 1).
    Square,
    /// Class 1 (latent value 2).
    Ellipse,
    /// Class 2 (latent value 3).
    Heart,
}

impl DspritesShape {
    /// The shape of class `class` (0, 1, 2).
    pub fn from_class(class: usize) -> Result<Self> {
        match class {
            0 => Ok(Self::Square),
            1 => Ok(Self::Ellipse),
            2 => Ok(Self::Heart),
            _ => Err(Error::InvalidArgument(format!(
                "dSprites shape class {class} is not 0 (square), 1 (ellipse) or 2 (heart)"
            ))),
        }
    }

    /// Whether the point `(u, v)` of the unit frame (`v` down) lies in the shape.
    fn contains(self, u: f64, v: f64) -> bool {
        match self {
            Self::Square => u.abs() <= 0.5 && v.abs() <= 0.5,
            Self::Ellipse => (2.0 * u).powi(2) + (4.0 * v).powi(2) <= 1.0,
            Self::Heart => {
                let k = 2.0 * HEART_HALF_WIDTH;
                let x = u * k;
                let y = -v * k + (HEART_TOP - 1.0) / 2.0;
                let r = x * x + y * y - 1.0;
                r * r * r - x * x * y * y * y <= 0.0
            }
        }
    }
}

/// The five factor indices of one dSprites image (colour, constant, is left out).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DspritesFactors {
    /// Shape class in `0..3` (square, ellipse, heart).
    pub shape: usize,
    /// Scale index in `0..6`: value `linspace(0.5, 1, 6)[scale]`.
    pub scale: usize,
    /// Orientation index in `0..40`: angle `linspace(0, 2 pi, 40)[orientation]` radians.
    pub orientation: usize,
    /// x position index in `0..32`: value `linspace(0, 1, 32)[pos_x]`.
    pub pos_x: usize,
    /// y position index in `0..32`: value `linspace(0, 1, 32)[pos_y]`.
    pub pos_y: usize,
}

impl DspritesFactors {
    /// Factors from the array `[shape, scale, orientation, pos_x, pos_y]`, each checked
    /// against [`DSPRITES_FACTOR_SIZES`].
    pub fn from_array(classes: [usize; 5]) -> Result<Self> {
        for (k, (&c, &size)) in classes.iter().zip(&DSPRITES_FACTOR_SIZES).enumerate() {
            if c >= size {
                return Err(Error::InvalidArgument(format!(
                    "dSprites factor {} = {c} is out of range 0..{size}",
                    DSPRITES_FACTOR_NAMES[k]
                )));
            }
        }
        Ok(Self {
            shape: classes[0],
            scale: classes[1],
            orientation: classes[2],
            pos_x: classes[3],
            pos_y: classes[4],
        })
    }

    /// `[shape, scale, orientation, pos_x, pos_y]`.
    pub fn to_array(&self) -> [usize; 5] {
        [
            self.shape,
            self.scale,
            self.orientation,
            self.pos_x,
            self.pos_y,
        ]
    }

    /// The factors of row `index` of the official file, whose rows run through all
    /// combinations with `posY` fastest, then `posX`, orientation, scale, shape.
    pub fn from_index(index: usize) -> Result<Self> {
        if index >= DSPRITES_LEN {
            return Err(Error::IndexOutOfRange {
                index,
                len: DSPRITES_LEN,
            });
        }
        let mut rest = index;
        let mut classes = [0usize; 5];
        for k in (0..5).rev() {
            classes[k] = rest % DSPRITES_FACTOR_SIZES[k];
            rest /= DSPRITES_FACTOR_SIZES[k];
        }
        Self::from_array(classes)
    }

    /// The row of these factors in the official file (inverse of [`Self::from_index`]).
    pub fn index(&self) -> usize {
        self.to_array()
            .iter()
            .zip(&DSPRITES_FACTOR_SIZES)
            .fold(0, |acc, (&c, &size)| acc * size + c)
    }

    /// The official `latents_classes` row: `[0, shape, scale, orientation, pos_x, pos_y]`.
    pub fn latents_classes(&self) -> [i64; 6] {
        let a = self.to_array();
        [
            0,
            a[0] as i64,
            a[1] as i64,
            a[2] as i64,
            a[3] as i64,
            a[4] as i64,
        ]
    }

    /// The `latents_values` row: `[1, shape + 1, scale, angle, posX, posY]` with the
    /// numpy linspace values listed on the fields.
    pub fn latents_values(&self) -> [f64; 6] {
        [
            1.0,
            (self.shape + 1) as f64,
            self.scale_value(),
            self.orientation_value(),
            linspace_value(0.0, 1.0, 32, self.pos_x),
            linspace_value(0.0, 1.0, 32, self.pos_y),
        ]
    }

    /// The scale, in `[0.5, 1]`.
    pub fn scale_value(&self) -> f64 {
        linspace_value(0.5, 1.0, 6, self.scale)
    }

    /// The orientation in radians, in `[0, 2 pi]`.
    pub fn orientation_value(&self) -> f64 {
        linspace_value(0.0, 2.0 * std::f64::consts::PI, 40, self.orientation)
    }

    /// Factors drawn uniformly (each index independently) with `rng`.
    pub fn random(rng: &mut StdRng) -> Self {
        Self {
            shape: rng.random_range(0..DSPRITES_FACTOR_SIZES[0]),
            scale: rng.random_range(0..DSPRITES_FACTOR_SIZES[1]),
            orientation: rng.random_range(0..DSPRITES_FACTOR_SIZES[2]),
            pos_x: rng.random_range(0..DSPRITES_FACTOR_SIZES[3]),
            pos_y: rng.random_range(0..DSPRITES_FACTOR_SIZES[4]),
        }
    }

    /// A copy with factor `factor` (0 = shape, ..., 4 = posY) set to `value`.
    pub fn with_factor(&self, factor: usize, value: usize) -> Result<Self> {
        if factor >= 5 {
            return Err(Error::InvalidArgument(format!(
                "dSprites has 5 factors (0..5), not factor {factor}"
            )));
        }
        let mut a = self.to_array();
        a[factor] = value;
        Self::from_array(a)
    }
}

/// `n` factor sets drawn uniformly with `rng`, except factor `factor` fixed to `value`
/// in all of them: one FactorVAE-metric vote's worth of factors.
pub fn sample_factors_with_fixed(
    factor: usize,
    value: usize,
    n: usize,
    rng: &mut StdRng,
) -> Result<Vec<DspritesFactors>> {
    (0..n)
        .map(|_| DspritesFactors::random(rng).with_factor(factor, value))
        .collect()
}

/// Renders one sprite into `image` (`64 * 64` u8, row-major): `on` where the sprite is,
/// 0 elsewhere. See the module docs for the geometry.
pub fn render_sprite_into(factors: &DspritesFactors, on: u8, image: &mut [u8]) -> Result<()> {
    let side = DSPRITES_SIDE;
    if image.len() != side * side {
        return Err(Error::InvalidArgument(format!(
            "render_sprite_into needs a buffer of {} pixels, got {}",
            side * side,
            image.len()
        )));
    }
    let shape = DspritesShape::from_class(factors.shape)?;
    image.fill(0);
    let size = SPRITE_EXTENT_PX * factors.scale_value();
    let angle = factors.orientation_value();
    let (sin, cos) = angle.sin_cos();
    let centre_x =
        POSITION_START_PX + POSITION_TRAVEL_PX * linspace_value(0.0, 1.0, 32, factors.pos_x);
    let centre_y =
        POSITION_START_PX + POSITION_TRAVEL_PX * linspace_value(0.0, 1.0, 32, factors.pos_y);
    // Every shape lies within radius 0.75 of the frame's centre (the square's corner is at
    // 0.71); only pixels in that disc's bounding box are tested.
    let reach = 0.75 * size + 1.0;
    let lo = |c: f64| ((c - reach).floor().max(0.0)) as usize;
    let hi = |c: f64| ((c + reach).ceil().min(side as f64)) as usize;
    for row in lo(centre_y)..hi(centre_y) {
        for col in lo(centre_x)..hi(centre_x) {
            let dx = col as f64 + 0.5 - centre_x;
            let dy = row as f64 + 0.5 - centre_y;
            // Undo the clockwise-on-screen rotation, then the scaling.
            let u = (cos * dx + sin * dy) / size;
            let v = (-sin * dx + cos * dy) / size;
            if shape.contains(u, v) {
                image[row * side + col] = on;
            }
        }
    }
    Ok(())
}

/// One rendered sprite: `64 * 64` u8 pixels, 1 on the sprite and 0 elsewhere (the
/// official file's encoding).
pub fn render_sprite(factors: &DspritesFactors) -> Result<Vec<u8>> {
    let mut image = vec![0u8; DSPRITES_SIDE * DSPRITES_SIDE];
    render_sprite_into(factors, 1, &mut image)?;
    Ok(image)
}

/// dSprites images with their factors.
#[derive(Clone, Debug)]
pub struct Dsprites {
    /// The images, `(N, 1, 64, 64)` u8 with pixels 0 or 255; labels are the shape class.
    pub images: Dataset,
    /// The factor indices of each image.
    pub factors: Vec<DspritesFactors>,
    /// The `latents_values` row of each image: read from the file by the loaders,
    /// computed by [`DspritesFactors::latents_values`] by the generator.
    pub latents_values: Vec<[f64; 6]>,
}

impl Dsprites {
    /// Renders one image per factor set, in order.
    ///
    /// ```
    /// use wae_data::{Dsprites, DspritesFactors};
    ///
    /// let square = DspritesFactors::from_array([0, 5, 0, 16, 16])?; // scale 1, angle 0
    /// let data = Dsprites::generate(&[square])?;
    /// assert_eq!(data.images.image_shape(), (1, 64, 64));
    /// let on = data.images.image(0)?.iter().filter(|&&p| p == 255).count();
    /// assert_eq!(on, 20 * 20);
    /// # Ok::<(), wae_data::Error>(())
    /// ```
    pub fn generate(factors: &[DspritesFactors]) -> Result<Self> {
        let per_image = DSPRITES_SIDE * DSPRITES_SIDE;
        let mut pixels = vec![0u8; factors.len() * per_image];
        for (f, image) in factors.iter().zip(pixels.chunks_exact_mut(per_image)) {
            render_sprite_into(f, 255, image)?;
        }
        let labels = factors.iter().map(|f| f.shape as u8).collect();
        Ok(Self {
            images: Dataset::new(pixels, labels, 1, DSPRITES_SIDE, DSPRITES_SIDE)?,
            factors: factors.to_vec(),
            latents_values: factors.iter().map(|f| f.latents_values()).collect(),
        })
    }

    /// Renders the images of the official file's rows `indices` (see
    /// [`DspritesFactors::from_index`]), in that order.
    pub fn generate_indices(indices: &[usize]) -> Result<Self> {
        let factors = indices
            .iter()
            .map(|&i| DspritesFactors::from_index(i))
            .collect::<Result<Vec<_>>>()?;
        Self::generate(&factors)
    }

    /// `n` images with factors drawn uniformly and independently by
    /// `StdRng::seed_from_u64(seed)` (with replacement).
    pub fn sample(n: usize, seed: u64) -> Result<Self> {
        use rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(seed);
        let factors: Vec<DspritesFactors> =
            (0..n).map(|_| DspritesFactors::random(&mut rng)).collect();
        Self::generate(&factors)
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.factors.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.factors.is_empty()
    }

    /// The factor classes as one row-major `(N, 5)` array (`[shape, scale, orientation,
    /// pos_x, pos_y]` per row), the layout the disentanglement metrics take.
    pub fn factor_classes(&self) -> Vec<usize> {
        self.factors.iter().flat_map(|f| f.to_array()).collect()
    }

    /// The official `latents_classes` rows (colour column included).
    pub fn latents_classes(&self) -> Vec<[i64; 6]> {
        self.factors.iter().map(|f| f.latents_classes()).collect()
    }

    /// Loads the whole official npz (3 GB of pixels in memory for the 737,280 images;
    /// prefer [`Dsprites::load_npz_subset`] for part of it).
    pub fn load_npz(path: &Path) -> Result<Self> {
        Self::load(path, None)
    }

    /// Loads the rows `indices` of the npz, in that order (repeats allowed). The image
    /// array is streamed once; only the chosen rows are kept.
    pub fn load_npz_subset(path: &Path, indices: &[usize]) -> Result<Self> {
        Self::load(path, Some(indices))
    }

    fn load(path: &Path, indices: Option<&[usize]>) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut archive = zip::ZipArchive::new(BufReader::new(file))
            .map_err(|e| bad_file(path, format!("not a readable npz (zip) archive: {e}")))?;

        let (classes_header, classes_raw) =
            read_entry(&mut archive, path, "latents_classes", "<i8", 8)?;
        let (values_header, values_raw) =
            read_entry(&mut archive, path, "latents_values", "<f8", 8)?;
        let n = check_rows(path, "latents_classes", &classes_header.shape, &[6])?;
        let n_values = check_rows(path, "latents_values", &values_header.shape, &[6])?;
        if n_values != n {
            return Err(bad_file(
                path,
                format!("latents_values has {n_values} rows but latents_classes has {n}"),
            ));
        }

        let all: Vec<usize>;
        let indices = match indices {
            Some(indices) => indices,
            None => {
                all = (0..n).collect();
                &all
            }
        };
        if let Some(&bad) = indices.iter().find(|&&i| i >= n) {
            return Err(Error::IndexOutOfRange { index: bad, len: n });
        }

        let mut factors = Vec::with_capacity(indices.len());
        let mut latents_values = Vec::with_capacity(indices.len());
        for &row in indices {
            let mut classes = [0i64; 6];
            let mut values = [0f64; 6];
            for c in 0..6 {
                let at = (row * 6 + c) * 8;
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&classes_raw[at..at + 8]);
                classes[c] = i64::from_le_bytes(bytes);
                bytes.copy_from_slice(&values_raw[at..at + 8]);
                values[c] = f64::from_le_bytes(bytes);
            }
            factors.push(factors_from_classes(path, row, &classes)?);
            latents_values.push(values);
        }
        drop(classes_raw);
        drop(values_raw);

        let pixels = read_images(&mut archive, path, n, indices)?;
        let labels = factors.iter().map(|f| f.shape as u8).collect();
        Ok(Self {
            images: Dataset::new(pixels, labels, 1, DSPRITES_SIDE, DSPRITES_SIDE)?,
            factors,
            latents_values,
        })
    }
}

/// A file-format error, reported as invalid data on `path`.
/// Reads the header of array `name` of the archive at `path` ([`crate::npy::read_header`]),
/// leaving `reader` at the first data byte; a bad header names the file and the array.
fn read_header_in(reader: &mut impl Read, path: &Path, name: &str) -> Result<NpyHeader> {
    read_header_message(reader).map_err(|message| bad_file(path, format!("{name}.npy: {message}")))
}

fn bad_file(path: &Path, message: String) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{message} (expected the official dSprites file {DSPRITES_FILE}, with arrays \
                 imgs (N, 64, 64) uint8, latents_values (N, 6) float64, latents_classes (N, 6) int64)"
            ),
        ),
    }
}

fn factors_from_classes(path: &Path, row: usize, classes: &[i64; 6]) -> Result<DspritesFactors> {
    let mut out = [0usize; 5];
    for (c, (&value, &size)) in classes.iter().zip(&DSPRITES_LATENT_SIZES).enumerate() {
        if value < 0 || value as u64 >= size as u64 {
            return Err(bad_file(
                path,
                format!(
                    "latents_classes[{row}, {c}] ({}) = {value} is outside 0..{size}",
                    DSPRITES_LATENT_NAMES[c]
                ),
            ));
        }
        if c > 0 {
            out[c - 1] = value as usize;
        }
    }
    DspritesFactors::from_array(out)
}

/// Checks a shape `(N, rest...)` and returns `N`.
fn check_rows(path: &Path, name: &str, shape: &[usize], rest: &[usize]) -> Result<usize> {
    if shape.len() != rest.len() + 1 || shape[1..] != *rest {
        let want: Vec<String> = rest.iter().map(|d| d.to_string()).collect();
        return Err(bad_file(
            path,
            format!(
                "{name} has shape {shape:?}, expected (N, {})",
                want.join(", ")
            ),
        ));
    }
    Ok(shape[0])
}

/// Reads the whole array `name` (`name.npy` in the archive) after checking its dtype.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    path: &Path,
    name: &str,
    descr: &str,
    item_size: usize,
) -> Result<(NpyHeader, Vec<u8>)> {
    let mut entry = open_entry(archive, path, name)?;
    let header = read_header_in(&mut entry, path, name)?;
    expect_npy(&header, path, name, descr)?;
    let len = header.shape.iter().product::<usize>() * item_size;
    let mut raw = vec![0u8; len];
    entry.read_exact(&mut raw).map_err(|e| {
        bad_file(
            path,
            format!("{name}.npy is truncated: {e} while reading {len} bytes of data"),
        )
    })?;
    Ok((header, raw))
}

fn open_entry<'a, R: Read + std::io::Seek>(
    archive: &'a mut zip::ZipArchive<R>,
    path: &Path,
    name: &str,
) -> Result<zip::read::ZipFile<'a, R>> {
    archive
        .by_name(&format!("{name}.npy"))
        .map_err(|e| match e {
            zip::result::ZipError::FileNotFound => bad_file(
                path,
                format!("the archive has no array `{name}` ({name}.npy)"),
            ),
            e => bad_file(path, format!("cannot open {name}.npy in the archive: {e}")),
        })
}

/// Streams `imgs.npy` once and returns the rows `indices` in order, 0/1 mapped to 0/255.
fn read_images<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    path: &Path,
    n: usize,
    indices: &[usize],
) -> Result<Vec<u8>> {
    let mut entry = open_entry(archive, path, "imgs")?;
    let header = read_header_in(&mut entry, path, "imgs")?;
    expect_npy(&header, path, "imgs", "|u1")?;
    let n_images = check_rows(path, "imgs", &header.shape, &[DSPRITES_SIDE, DSPRITES_SIDE])?;
    if n_images != n {
        return Err(bad_file(
            path,
            format!("imgs has {n_images} images but latents_classes has {n} rows"),
        ));
    }
    let per_image = DSPRITES_SIDE * DSPRITES_SIDE;
    // Output positions of each requested row, visited in file order.
    let mut wanted: HashMap<usize, Vec<usize>> = HashMap::new();
    for (position, &row) in indices.iter().enumerate() {
        wanted.entry(row).or_default().push(position);
    }
    let last_row = indices.iter().copied().max();
    let mut pixels = vec![0u8; indices.len() * per_image];
    let mut buffer = vec![0u8; per_image];
    if let Some(last_row) = last_row {
        for row in 0..=last_row {
            entry.read_exact(&mut buffer).map_err(|e| {
                bad_file(path, format!("imgs.npy is truncated at image {row}: {e}"))
            })?;
            let Some(positions) = wanted.get(&row) else {
                continue;
            };
            if let Some(p) = buffer.iter().position(|&v| v > 1) {
                return Err(bad_file(
                    path,
                    format!(
                        "imgs[{row}] has pixel value {} at ({}, {}); dSprites pixels are 0 or 1",
                        buffer[p],
                        p / DSPRITES_SIDE,
                        p % DSPRITES_SIDE
                    ),
                ));
            }
            for &position in positions {
                let out = &mut pixels[position * per_image..(position + 1) * per_image];
                for (o, &v) in out.iter_mut().zip(&buffer) {
                    *o = v * 255;
                }
            }
        }
    }
    Ok(pixels)
}

/// The dSprites checks of a `.npy` header: its dtype and its memory order.
fn expect_npy(header: &NpyHeader, path: &Path, name: &str, descr: &str) -> Result<()> {
    // A one-byte type has no byte order: numpy writes '|u1', some writers '<u1'.
    let same = header.descr == descr
        || (descr.len() == 3
            && header.descr.len() == 3
            && descr.ends_with("u1")
            && header.descr.ends_with("u1"));
    if !same {
        return Err(bad_file(
            path,
            format!("{name} has dtype '{}', expected '{descr}'", header.descr),
        ));
    }
    if header.fortran_order {
        return Err(bad_file(
            path,
            format!("{name} is stored in Fortran order; only C order is supported"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heart_constants_bound_the_curve_tightly() {
        let f = |x: f64, y: f64| (x * x + y * y - 1.0).powi(3) - x * x * y.powi(3);
        // Nothing of the heart lies outside the box, and the box is tight (1e-6).
        let mut max_x = 0f64;
        let mut max_y = f64::MIN;
        let mut min_y = f64::MAX;
        let steps = 2000;
        for i in 0..=steps {
            for j in 0..=steps {
                let x = -1.3 + 2.6 * i as f64 / steps as f64;
                let y = -1.2 + 2.6 * j as f64 / steps as f64;
                if f(x, y) <= 0.0 {
                    max_x = max_x.max(x.abs());
                    max_y = max_y.max(y);
                    min_y = min_y.min(y);
                }
            }
        }
        assert!(
            max_x <= HEART_HALF_WIDTH && HEART_HALF_WIDTH - max_x < 2e-3,
            "{max_x}"
        );
        assert!(max_y <= HEART_TOP && HEART_TOP - max_y < 2e-3, "{max_y}");
        assert!((min_y + 1.0).abs() < 2e-3, "{min_y}");
        // The extremes lie on the curve.
        let column = |x: f64| (0..=200_000).any(|j| f(x, -1.0 + 2.3 * j as f64 / 2e5) <= 0.0);
        assert!(column(HEART_HALF_WIDTH - 1e-6) && !column(HEART_HALF_WIDTH + 1e-6));
        let top_x = 0.514_454_022_217_806_7;
        assert!(f(top_x, HEART_TOP).abs() < 1e-9);
    }
}
