//! Tiny-ImageNet-200 in its official folder layout (<http://cs231n.stanford.edu/tiny-imagenet-200.zip>):
//! `wnids.txt` (200 class ids), `train/<wnid>/images/*.JPEG` (500 per class),
//! `val/val_annotations.txt` (`file<TAB>wnid<TAB>bbox...`) with `val/images/*.JPEG`.
//! Images are 64x64; a few are grayscale and are repeated over the three channels.
//! This module parses the text files and decodes images; the native reader walks the folders.

use crate::error::InputError;

/// Side of a Tiny-ImageNet image in pixels (images are 64x64).
pub const SIZE: usize = 64;

/// Class ids from `wnids.txt`, in file order (= label order).
pub fn parse_wnids(text: &str, source: &str) -> Result<Vec<String>, InputError> {
    let ids: Vec<String> =
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if ids.is_empty() {
        return Err(InputError::new(
            source,
            "no class ids (expected one wnid such as n01443537 per line)",
        ));
    }
    let mut sorted = ids.clone();
    sorted.sort();
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(InputError::new(source, format!("class id {} appears twice", w[0])));
    }
    Ok(ids)
}

/// `(file name, label)` pairs from `val_annotations.txt`.
pub fn parse_val_annotations(
    text: &str,
    wnids: &[String],
    source: &str,
) -> Result<Vec<(String, u32)>, InputError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut fields = line.split('\t');
        let (Some(file), Some(wnid)) = (fields.next(), fields.next()) else {
            return Err(InputError::new(
                source,
                format!("line {}: expected `file<TAB>wnid<TAB>...`", i + 1),
            ));
        };
        let label = wnids.iter().position(|w| w == wnid.trim()).ok_or_else(|| {
            InputError::new(
                source,
                format!("line {}: class id {wnid:?} is not in wnids.txt", i + 1),
            )
        })?;
        out.push((file.trim().to_string(), label as u32));
    }
    Ok(out)
}

/// Decodes one JPEG into 64x64x3 CHW bytes; grayscale images are repeated over the channels.
pub fn decode_image(bytes: &[u8], source: &str) -> Result<Vec<u8>, InputError> {
    let unreadable =
        |e: jpeg_decoder::Error| InputError::new(source, format!("not a readable JPEG image: {e}"));
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    // The size is checked from the header first, so that a header claiming a huge image
    // allocates nothing.
    decoder.read_info().map_err(unreadable)?;
    let info =
        decoder.info().ok_or_else(|| InputError::new(source, "JPEG without image information"))?;
    let (w, h) = (info.width as usize, info.height as usize);
    if (w, h) != (SIZE, SIZE) {
        return Err(InputError::new(
            source,
            format!("image is {w}x{h}, Tiny-ImageNet images are {SIZE}x{SIZE}"),
        ));
    }
    decoder.set_max_decoding_buffer_size(1 << 20);
    let pixels = decoder.decode().map_err(unreadable)?;
    let info =
        decoder.info().ok_or_else(|| InputError::new(source, "JPEG without image information"))?;
    if (info.width as usize, info.height as usize) != (SIZE, SIZE) {
        return Err(InputError::new(
            source,
            format!(
                "image is {}x{}, Tiny-ImageNet images are {SIZE}x{SIZE}",
                info.width, info.height
            ),
        ));
    }
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => {
            return Err(InputError::new(
                source,
                format!("unsupported JPEG pixel format {other:?}"),
            ));
        }
    };
    let plane = SIZE * SIZE;
    if pixels.len() < plane * channels {
        return Err(InputError::new(
            source,
            format!("the JPEG decoded to {} bytes, {} expected", pixels.len(), plane * channels),
        ));
    }
    let mut chw = vec![0u8; 3 * plane];
    for p in 0..plane {
        for c in 0..3 {
            chw[c * plane + p] = pixels[p * channels + if channels == 1 { 0 } else { c }];
        }
    }
    Ok(chw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wnids_and_annotations() {
        let wnids = parse_wnids("n01\nn02\n\n", "wnids.txt").unwrap();
        assert_eq!(wnids, vec!["n01", "n02"]);
        let ann = parse_val_annotations(
            "val_0.JPEG\tn02\t0\t0\t10\t10\nval_1.JPEG\tn01\t1\t2\t3\t4\n",
            &wnids,
            "a",
        )
        .unwrap();
        assert_eq!(ann, vec![("val_0.JPEG".to_string(), 1), ("val_1.JPEG".to_string(), 0)]);
        let e = parse_val_annotations("v.JPEG\tn09\n", &wnids, "val_annotations.txt")
            .unwrap_err()
            .to_string();
        assert!(e.contains("val_annotations.txt") && e.contains("n09"), "{e}");
        assert!(parse_wnids("a\na\n", "w").is_err());
    }

    #[test]
    fn garbage_is_not_a_jpeg() {
        let e = decode_image(b"hello", "train/n01/images/x.JPEG").unwrap_err().to_string();
        assert!(e.contains("x.JPEG") && e.contains("JPEG"), "{e}");
    }
}
