//! Drawing primitives on an RGB image: clipped rectangles, thick lines, discs
//! and text in the public-domain 8x8 bitmap font of the `font8x8` crate (no
//! system fonts, no font files).

use image::{Rgb, RgbImage};

/// Width and height in pixels of one character at scale 1.
pub const GLYPH_SIZE: u32 = 8;

/// White.
pub const WHITE: [u8; 3] = [255, 255, 255];
/// Black.
pub const BLACK: [u8; 3] = [0, 0, 0];
/// Light grey for grid lines.
pub const LIGHT_GREY: [u8; 3] = [225, 225, 225];
/// Mid grey for unlabelled points.
pub const GREY: [u8; 3] = [140, 140, 140];

/// The ten colours of matplotlib's `tab10` palette, for classes and series.
pub const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// The colour of class or series `index` (the palette repeats after 10).
pub fn palette_colour(index: usize) -> [u8; 3] {
    PALETTE[index % PALETTE.len()]
}

/// An RGB image with clipped drawing operations in signed pixel coordinates.
#[derive(Debug, Clone)]
pub struct Canvas {
    image: RgbImage,
}

impl Canvas {
    /// A `width x height` canvas filled with `background`.
    pub fn new(width: u32, height: u32, background: [u8; 3]) -> Self {
        Self {
            image: RgbImage::from_pixel(width.max(1), height.max(1), Rgb(background)),
        }
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.image.width()
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.image.height()
    }

    /// The picture.
    pub fn into_image(self) -> RgbImage {
        self.image
    }

    /// Sets one pixel; coordinates outside the canvas are ignored.
    pub fn put(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as u64) < self.width() as u64 && (y as u64) < self.height() as u64
        {
            self.image.put_pixel(x as u32, y as u32, Rgb(colour));
        }
    }

    /// Fills the rectangle with top-left corner `(x, y)`, clipped to the canvas.
    pub fn fill_rect(&mut self, x: i64, y: i64, width: i64, height: i64, colour: [u8; 3]) {
        let x0 = x.max(0);
        let y0 = y.max(0);
        let x1 = (x + width).min(self.width() as i64);
        let y1 = (y + height).min(self.height() as i64);
        for yy in y0..y1 {
            for xx in x0..x1 {
                self.image.put_pixel(xx as u32, yy as u32, Rgb(colour));
            }
        }
    }

    /// The outline of a rectangle, one pixel wide.
    pub fn stroke_rect(&mut self, x: i64, y: i64, width: i64, height: i64, colour: [u8; 3]) {
        self.fill_rect(x, y, width, 1, colour);
        self.fill_rect(x, y + height - 1, width, 1, colour);
        self.fill_rect(x, y, 1, height, colour);
        self.fill_rect(x + width - 1, y, 1, height, colour);
    }

    /// A straight line from `(x0, y0)` to `(x1, y1)` (Bresenham) drawn with a
    /// square brush of `thickness` pixels.
    pub fn line(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, colour: [u8; 3], thickness: u32) {
        let t = thickness.max(1) as i64;
        let offset = (t - 1) / 2;
        let (mut x, mut y) = (x0, y0);
        let dx = (x1 - x0).abs();
        let dy = -(y1 - y0).abs();
        let sx = if x0 < x1 { 1 } else { -1 };
        let sy = if y0 < y1 { 1 } else { -1 };
        let mut err = dx + dy;
        loop {
            self.fill_rect(x - offset, y - offset, t, t, colour);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// A filled disc of `radius` pixels centred on `(cx, cy)`.
    pub fn disc(&mut self, cx: i64, cy: i64, radius: u32, colour: [u8; 3]) {
        let r = radius as i64;
        for dy in -r..=r {
            for dx in -r..=r {
                if dx * dx + dy * dy <= r * r + r {
                    self.put(cx + dx, cy + dy, colour);
                }
            }
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel
    /// `scale x scale`. Characters outside ASCII are drawn as `?`.
    pub fn text(&mut self, x: i64, y: i64, text: &str, colour: [u8; 3], scale: u32) {
        let s = scale.max(1) as i64;
        for (i, ch) in text.chars().enumerate() {
            let code = if ch.is_ascii() {
                ch as usize
            } else {
                '?' as usize
            };
            let glyph = font8x8::legacy::BASIC_LEGACY[code];
            let gx = x + i as i64 * GLYPH_SIZE as i64 * s;
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits & (1 << col) != 0 {
                        self.fill_rect(gx + col * s, y + row as i64 * s, s, s, colour);
                    }
                }
            }
        }
    }

    /// Width in pixels of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: u32) -> i64 {
        text.chars().count() as i64 * (GLYPH_SIZE * scale.max(1)) as i64
    }

    /// Copies `picture` with its top-left corner at `(x, y)` (clipped).
    pub fn paste(&mut self, picture: &RgbImage, x: i64, y: i64) {
        for (px, py, p) in picture.enumerate_pixels() {
            self.put(x + px as i64, y + py as i64, p.0);
        }
    }
}

/// Places `pictures` in rows of `columns`, `gap` pixels apart and around, on a
/// `background`; each cell is as large as the largest picture.
pub fn tile(pictures: &[RgbImage], columns: usize, gap: u32, background: [u8; 3]) -> RgbImage {
    let columns = columns.max(1);
    let cell_w = pictures.iter().map(|p| p.width()).max().unwrap_or(1);
    let cell_h = pictures.iter().map(|p| p.height()).max().unwrap_or(1);
    let used_columns = columns.min(pictures.len().max(1)) as u32;
    let rows = pictures.len().div_ceil(columns).max(1) as u32;
    let mut canvas = Canvas::new(
        used_columns * cell_w + (used_columns + 1) * gap,
        rows * cell_h + (rows + 1) * gap,
        background,
    );
    for (i, p) in pictures.iter().enumerate() {
        let col = (i % columns) as u32;
        let row = (i / columns) as u32;
        canvas.paste(
            p,
            (gap + col * (cell_w + gap)) as i64,
            (gap + row * (cell_h + gap)) as i64,
        );
    }
    canvas.into_image()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_draws_the_font_glyph() {
        let mut c = Canvas::new(16, 8, WHITE);
        c.text(0, 0, "1", BLACK, 1);
        let glyph = font8x8::legacy::BASIC_LEGACY['1' as usize];
        let img = c.into_image();
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                let on = bits & (1 << col) != 0;
                let p = img.get_pixel(col, row as u32).0;
                assert_eq!(p == BLACK, on, "pixel ({col}, {row})");
            }
        }
        // The second cell stays empty.
        assert!(
            img.enumerate_pixels()
                .filter(|(x, _, _)| *x >= 8)
                .all(|(_, _, p)| p.0 == WHITE)
        );
        assert_eq!(Canvas::text_width("abc", 2), 48);
    }

    #[test]
    fn lines_and_clipping() {
        let mut c = Canvas::new(10, 10, WHITE);
        c.line(-5, 5, 20, 5, BLACK, 1);
        c.line(2, 0, 2, 9, BLACK, 3);
        let img = c.into_image();
        for x in 0..10 {
            assert_eq!(img.get_pixel(x, 5).0, BLACK);
        }
        for y in 0..10 {
            for x in 1..=3 {
                assert_eq!(img.get_pixel(x, y).0, BLACK);
            }
            assert_eq!(img.get_pixel(4, y).0 == BLACK, y == 5);
        }
    }

    #[test]
    fn tile_sizes() {
        let a = RgbImage::new(10, 4);
        let b = RgbImage::new(6, 8);
        let t = tile(&[a.clone(), b.clone(), a], 2, 2, WHITE);
        assert_eq!(t.dimensions(), (2 * 10 + 3 * 2, 2 * 8 + 3 * 2));
        let single = tile(&[b], 3, 1, WHITE);
        assert_eq!(single.dimensions(), (8, 10));
    }
}
