//! Option catalogs: the dropdown choices of a cinematic option, with defaults that
//! ship with reelmesh. Projects extend them (stored in the document as a set per
//! catalog, see [`crate::document`]); the defaults are code, so they never bloat
//! the document.

/// One catalog: its stored name, its label and the default choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Catalog {
    /// Key in the document and in exports.
    pub name: &'static str,
    /// Human label.
    pub label: &'static str,
    /// Default choices.
    pub defaults: &'static [&'static str],
}

/// Every catalog with its defaults.
pub const CATALOGS: &[Catalog] = &[
    Catalog {
        name: "camera_body",
        label: "Camera body",
        defaults: &[
            "Arri Alexa 35",
            "Arri Alexa Mini LF",
            "Arri Alexa 65",
            "RED V-Raptor",
            "RED Komodo",
            "Sony Venice 2",
            "Sony FX6",
            "Sony FX3",
            "Canon C300 Mark III",
            "Blackmagic URSA Mini Pro 12K",
            "Panavision Millennium DXL2",
            "IMAX 70mm film camera",
            "16mm Bolex",
            "Super 8 camera",
            "iPhone 15 Pro",
        ],
    },
    Catalog {
        name: "focal_length",
        label: "Focal length",
        defaults: &[
            "14mm", "18mm", "24mm", "28mm", "35mm", "40mm", "50mm", "65mm", "85mm", "100mm",
            "135mm", "200mm",
        ],
    },
    Catalog {
        name: "lens_type",
        label: "Lens type",
        defaults: &[
            "spherical prime",
            "anamorphic",
            "vintage",
            "macro",
            "tilt-shift",
            "fisheye",
            "telephoto zoom",
            "Cooke S4",
            "Zeiss Master Prime",
            "Canon K35",
            "Panavision C-series anamorphic",
        ],
    },
    Catalog {
        name: "film_stock",
        label: "Film stock",
        defaults: &[
            "Kodak Vision3 500T",
            "Kodak Vision3 250D",
            "Kodak Vision3 50D",
            "Kodak Portra 400",
            "Kodak Tri-X 400",
            "Kodak Ektachrome E100",
            "Fujifilm Eterna 500",
            "Fujifilm Velvia 50",
            "Ilford HP5",
            "CineStill 800T",
            "digital",
        ],
    },
    Catalog {
        name: "style",
        label: "Style",
        defaults: &[
            "photorealistic",
            "cinematic",
            "anime",
            "3D animation",
            "watercolor",
            "oil painting",
            "comic book",
            "film noir",
            "documentary",
            "storyboard sketch",
            "claymation",
        ],
    },
    Catalog {
        name: "look_and_feel",
        label: "Look and feel",
        defaults: &[
            "Dune",
            "Blade Runner 2049",
            "Mad Max: Fury Road",
            "The Grand Budapest Hotel",
            "In the Mood for Love",
            "Parasite",
            "Oldboy",
            "Her",
            "Roma",
            "Spirited Away",
            "The Matrix",
            "Amélie",
        ],
    },
    Catalog {
        name: "lighting_source",
        label: "Lighting source",
        defaults: &[
            "natural",
            "golden hour sun",
            "overcast daylight",
            "moonlight",
            "neon",
            "practical lamps",
            "candlelight",
            "firelight",
            "fluorescent",
            "LED panels",
            "street lights",
        ],
    },
    Catalog {
        name: "lighting_style",
        label: "Lighting style",
        defaults: &[
            "Rembrandt",
            "high key",
            "low key",
            "chiaroscuro",
            "split",
            "butterfly",
            "rim",
            "silhouette",
            "soft diffused",
            "hard",
            "motivated",
        ],
    },
    Catalog {
        name: "atmosphere",
        label: "Atmosphere",
        defaults: &[
            "tense",
            "melancholic",
            "dreamy",
            "eerie",
            "romantic",
            "hopeful",
            "chaotic",
            "serene",
            "nostalgic",
            "ominous",
            "foggy",
            "rainy",
        ],
    },
    Catalog {
        name: "lens_filter",
        label: "Lens filter",
        defaults: &[
            "none",
            "Black Pro-Mist 1/4",
            "Black Pro-Mist 1/8",
            "Glimmerglass",
            "polarizer",
            "ND",
            "diffusion",
            "star filter",
            "anamorphic streak filter",
        ],
    },
    Catalog {
        name: "aspect_ratio",
        label: "Aspect ratio",
        defaults: &[
            "16:9", "2.39:1", "1.85:1", "2:1", "4:3", "1:1", "9:16", "2.76:1", "1.43:1",
        ],
    },
];

/// The catalog with this stored name.
#[must_use]
pub fn catalog(name: &str) -> Option<&'static Catalog> {
    CATALOGS.iter().find(|c| c.name == name)
}

/// Width over height of an aspect ratio text such as `16:9`, `2.39:1` or `2.39`.
#[must_use]
pub fn aspect_ratio_value(text: &str) -> Option<f64> {
    let (w, h) = match text.trim().split_once([':', 'x', '/']) {
        Some((w, h)) => (w.trim().parse::<f64>().ok()?, h.trim().parse::<f64>().ok()?),
        None => (text.trim().parse::<f64>().ok()?, 1.0),
    };
    (w.is_finite() && h.is_finite() && w > 0.0 && h > 0.0).then_some(w / h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogs_are_unique_and_non_empty() {
        for (i, cat) in CATALOGS.iter().enumerate() {
            assert!(!cat.defaults.is_empty(), "{}", cat.name);
            assert!(CATALOGS[..i].iter().all(|c| c.name != cat.name));
            let mut values: Vec<_> = cat.defaults.to_vec();
            values.sort_unstable();
            values.dedup();
            assert_eq!(
                values.len(),
                cat.defaults.len(),
                "duplicate default in {}",
                cat.name
            );
        }
    }

    #[test]
    fn aspect_ratios_parse() {
        assert_eq!(aspect_ratio_value("2:1"), Some(2.0));
        assert!((aspect_ratio_value("16:9").unwrap_or(0.0) - 1.7778).abs() < 1e-3);
        assert_eq!(aspect_ratio_value("2.39"), Some(2.39));
        assert_eq!(aspect_ratio_value("0:1"), None);
        assert_eq!(aspect_ratio_value("wide"), None);
    }
}
