//! The built-in dataset: the UCI "Optical Recognition of Handwritten Digits" set (E. Alpaydin,
//! C. Kaynak, 1998; UCI Machine Learning Repository; CC BY 4.0), in the 1797-image copy that
//! scikit-learn ships. Real handwriting of 43 writers, 8x8 pixels with values 0..16.
//!
//! The file is embedded in the library, so labs run offline. Images are rendered at a chosen
//! size by bilinear upsampling (PyTorch `interpolate(mode="bilinear", align_corners=False)`
//! semantics) and repeated over 3 channels, so every CIFAR model runs on them unchanged.
//! Split: every fifth image (index % 5 == 4) is a test image: 1438 train, 359 test.

use super::image_set::ImageSet;
use crate::error::InputError;
use std::io::Read;

const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../data/digits.csv.gz");
const SOURCE: &str = "built-in digits (data/digits.csv.gz)";

/// One 8x8 image (values 0..16) and its label.
struct RawDigit {
    pixels: [u8; 64],
    label: u32,
}

fn parse(gz: &[u8], source: &str) -> Result<Vec<RawDigit>, InputError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_string(&mut text)
        .map_err(|e| InputError::new(source, format!("not a gzip-compressed text file: {e}")))?;
    let mut rows = Vec::new();
    for (line_no, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != 65 {
            return Err(InputError::new(
                source,
                format!(
                    "line {}: {} fields, expected 65 (64 pixels + label)",
                    line_no + 1,
                    fields.len()
                ),
            ));
        }
        let mut pixels = [0u8; 64];
        for (i, f) in fields[..64].iter().enumerate() {
            let v: f64 = f.parse().map_err(|_| {
                InputError::new(
                    source,
                    format!("line {}: pixel {i} is not a number: {f:?}", line_no + 1),
                )
            })?;
            if !(0.0..=16.0).contains(&v) {
                return Err(InputError::new(
                    source,
                    format!("line {}: pixel {i} = {v} outside 0..16", line_no + 1),
                ));
            }
            pixels[i] = v as u8;
        }
        let label: f64 = fields[64].parse().map_err(|_| {
            InputError::new(source, format!("line {}: label is not a number", line_no + 1))
        })?;
        if !(0.0..=9.0).contains(&label) || label.fract() != 0.0 {
            return Err(InputError::new(
                source,
                format!("line {}: label {label} outside 0..9", line_no + 1),
            ));
        }
        rows.push(RawDigit { pixels, label: label as u32 });
    }
    Ok(rows)
}

/// Bilinear resize of one 8x8 image (values 0..16) to `size x size`, as 8-bit [0,255].
fn render(digit: &[u8; 64], size: usize) -> Vec<u8> {
    let scale = 8.0 / size as f32;
    let mut out = Vec::with_capacity(size * size);
    let src = |y: usize, x: usize| digit[y * 8 + x] as f32 / 16.0;
    for oy in 0..size {
        let sy = ((oy as f32 + 0.5) * scale - 0.5).max(0.0);
        let (y0, wy) = (sy.floor() as usize, sy - sy.floor());
        let y1 = (y0 + 1).min(7);
        for ox in 0..size {
            let sx = ((ox as f32 + 0.5) * scale - 0.5).max(0.0);
            let (x0, wx) = (sx.floor() as usize, sx - sx.floor());
            let x1 = (x0 + 1).min(7);
            let v = (1.0 - wy) * ((1.0 - wx) * src(y0, x0) + wx * src(y0, x1))
                + wy * ((1.0 - wx) * src(y1, x0) + wx * src(y1, x1));
            out.push((v * 255.0).round().clamp(0.0, 255.0) as u8);
        }
    }
    out
}

/// The built-in digits as (train, test), rendered at `size x size` with 3 channels.
pub fn load(size: usize) -> Result<(ImageSet, ImageSet), InputError> {
    if size < 8 {
        return Err(InputError::new(SOURCE, format!("image size {size} is below the native 8x8")));
    }
    let rows = parse(DIGITS_CSV_GZ, SOURCE)?;
    let make = |name: &str, keep: &dyn Fn(usize) -> bool| {
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        for (_, row) in rows.iter().enumerate().filter(|(i, _)| keep(*i)) {
            let plane = render(&row.pixels, size);
            for _ in 0..3 {
                pixels.extend_from_slice(&plane);
            }
            labels.push(row.label);
        }
        ImageSet {
            name: name.to_string(),
            pixels,
            labels,
            channels: 3,
            height: size,
            width: size,
            num_classes: 10,
            class_names: (0..10).map(|d| d.to_string()).collect(),
        }
    };
    Ok((make("digits", &|i| i % 5 != 4), make("digits", &|i| i % 5 == 4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_has_1797_images_with_balanced_labels() {
        let rows = parse(DIGITS_CSV_GZ, SOURCE).unwrap();
        assert_eq!(rows.len(), 1797);
        for d in 0..10 {
            let count = rows.iter().filter(|r| r.label == d).count();
            assert!((174..=183).contains(&count), "digit {d}: {count}");
        }
    }

    #[test]
    fn split_sizes_and_rendering() {
        let (train, test) = load(32).unwrap();
        assert_eq!((train.len(), test.len()), (1438, 359));
        train.validate("train").unwrap();
        test.validate("test").unwrap();
        // Channels are copies of one plane.
        let plane = 32 * 32;
        assert_eq!(train.pixels[..plane], train.pixels[plane..2 * plane]);
    }

    #[test]
    fn bilinear_render_of_a_constant_image_is_constant() {
        let img = render(&[16u8; 64], 32);
        assert!(img.iter().all(|&p| p == 255));
        let img = render(&[8u8; 64], 13);
        assert!(img.iter().all(|&p| p == 128));
    }

    #[test]
    fn identity_render_at_native_size() {
        let mut d = [0u8; 64];
        for (i, v) in d.iter_mut().enumerate() {
            *v = (i % 17) as u8;
        }
        let img = render(&d, 8);
        for i in 0..64 {
            assert_eq!(img[i], ((d[i] as f32 / 16.0) * 255.0).round() as u8);
        }
    }

    #[test]
    fn broken_rows_are_reported_with_line_numbers() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"1,2,3\n").unwrap();
        let gz = enc.finish().unwrap();
        let err = parse(&gz, "x.csv.gz").err().unwrap().to_string();
        assert!(err.contains("x.csv.gz") && err.contains("line 1") && err.contains("65"), "{err}");
    }
}
