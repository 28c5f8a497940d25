//! Images for canvases: RGBA bytes from CHW floats, and the signed colour map of a perturbation.

/// CHW floats in [0,1] (3 channels) to RGBA bytes.
pub fn image_rgba(chw: &[f32], h: usize, w: usize) -> Vec<u8> {
    let plane = h * w;
    let mut out = Vec::with_capacity(4 * plane);
    for p in 0..plane {
        for c in 0..3 {
            out.push((chw[c * plane + p].clamp(0.0, 1.0) * 255.0).round() as u8);
        }
        out.push(255);
    }
    out
}

/// Okabe & Ito's blue and orange: the ends of the perturbation's colour map, the pair that
/// colour-blind readers tell apart (the page's charts use the same two).
const NEGATIVE: [f32; 3] = [0.0, 114.0, 178.0];
const POSITIVE: [f32; 3] = [230.0, 159.0, 0.0];

/// The perturbation `adv - clean`, averaged over channels, as a diverging colour map: white at
/// zero, blue towards `-range`, orange towards `+range` (full colour at and beyond +-range).
pub fn delta_rgba(clean: &[f32], adv: &[f32], h: usize, w: usize, range: f32) -> Vec<u8> {
    let plane = h * w;
    let mut out = Vec::with_capacity(4 * plane);
    for p in 0..plane {
        let d = (0..3).map(|c| adv[c * plane + p] - clean[c * plane + p]).sum::<f32>() / 3.0;
        let t = (d / range.max(1e-12)).clamp(-1.0, 1.0);
        let end = if t >= 0.0 { POSITIVE } else { NEGATIVE };
        for e in end {
            out.push((255.0 + t.abs() * (e - 255.0)).round() as u8);
        }
        out.push(255);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_map_signs() {
        let clean = vec![0.5; 3 * 2];
        let adv = vec![0.6, 0.4, 0.6, 0.4, 0.6, 0.4];
        let d = delta_rgba(&clean, &adv, 1, 2, 0.1);
        assert_eq!(&d[..4], &[230, 159, 0, 255]); // +eps: orange
        assert_eq!(&d[4..], &[0, 114, 178, 255]); // -eps: blue
        let part = delta_rgba(&clean, &[0.575, 0.5, 0.575, 0.5, 0.575, 0.5], 1, 2, 0.1);
        assert_eq!(&part, &[236, 183, 64, 255, 255, 255, 255, 255]); // +3/4 eps, and zero: white
        assert_eq!(image_rgba(&[1.0, 0.0, 0.5], 1, 1), vec![255, 0, 128, 255]);
    }
}
