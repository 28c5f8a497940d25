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

/// The perturbation `adv - clean`, averaged over channels and scaled by `eps`, as a diverging
/// colour map: blue for negative, white for zero, red for positive (magnified so that +-eps
/// is full colour).
pub fn delta_rgba(clean: &[f32], adv: &[f32], h: usize, w: usize, eps: f32) -> Vec<u8> {
    let plane = h * w;
    let mut out = Vec::with_capacity(4 * plane);
    for p in 0..plane {
        let d = (0..3).map(|c| adv[c * plane + p] - clean[c * plane + p]).sum::<f32>() / 3.0;
        let t = (d / eps.max(1e-12)).clamp(-1.0, 1.0);
        let fade = |v: f32| ((1.0 - v) * 255.0).round() as u8;
        let (r, g, b) = if t >= 0.0 { (255, fade(t), fade(t)) } else { (fade(-t), fade(-t), 255) };
        out.extend_from_slice(&[r, g, b, 255]);
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
        assert_eq!(&d[..4], &[255, 0, 0, 255]); // +eps: red
        assert_eq!(&d[4..], &[0, 0, 255, 255]); // -eps: blue
        assert_eq!(image_rgba(&[1.0, 0.0, 0.5], 1, 1), vec![255, 0, 128, 255]);
    }
}
