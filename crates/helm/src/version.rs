//! Helm's version: parsed from `helm version --template {{.Version}}` (or `--short`), and the
//! support policy (3.17+ for `--take-ownership`, or 4.x).

use std::fmt;

/// A Helm release version such as `v3.17.2` or `v4.1.4+g1234abc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelmVersion {
    /// Major version: 3 or 4 are supported.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version (0 when Helm printed only `vX.Y`, as an unstamped `go install` build does).
    pub patch: u32,
    /// Pre-release suffix without the dash (`rc.1`), if any.
    pub pre: Option<String>,
}

/// The Helm major versions this crate drives, which differ in flags (`--wait`, `--server-side`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelmMajor {
    /// Helm 3.17 or newer.
    V3,
    /// Helm 4.x.
    V4,
}

/// Why a Helm binary cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedVersion {
    /// Helm 3 before 3.17 has no `--take-ownership`.
    #[error("Helm {0} lacks --take-ownership; install Helm 3.17+ or 4.x")]
    TooOld(HelmVersion),
    /// Helm 2 (Tiller) or older.
    #[error("Helm {0} is Helm 2 or older and has no three-way adoption; install Helm 3.17+ or 4.x")]
    Ancient(HelmVersion),
    /// A major version this crate has not been tested with.
    #[error(
        "Helm {0} is newer than this tool knows (its flags may differ); install Helm 3.17+ or 4.x"
    )]
    TooNew(HelmVersion),
}

impl HelmVersion {
    /// Parses Helm's version text: `v3.17.2`, `v3.17.2+gabc`, `v4.1`, `v4.0.0-rc.1`, with or
    /// without the leading `v` and surrounding whitespace.
    pub fn parse(text: &str) -> Option<HelmVersion> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        // An unstamped `go install` build prints `v4.1`: semver wants the patch too.
        let version = semver::Version::parse(text).ok().or_else(|| {
            let (core, suffix) = text.split_at(text.find(['-', '+']).unwrap_or(text.len()));
            (core.matches('.').count() == 1)
                .then(|| semver::Version::parse(&format!("{core}.0{suffix}")).ok())
                .flatten()
        })?;
        // Build metadata (`+g1234abc`) is not part of the version.
        Some(HelmVersion {
            major: version.major.try_into().ok()?,
            minor: version.minor.try_into().ok()?,
            patch: version.patch.try_into().ok()?,
            pre: (!version.pre.is_empty()).then(|| version.pre.to_string()),
        })
    }

    /// The supported major this version belongs to, or why it is not supported.
    pub fn support(&self) -> Result<HelmMajor, UnsupportedVersion> {
        match self.major {
            0..=2 => Err(UnsupportedVersion::Ancient(self.clone())),
            3 if self.minor < 17 => Err(UnsupportedVersion::TooOld(self.clone())),
            3 => Ok(HelmMajor::V3),
            4 => Ok(HelmMajor::V4),
            _ => Err(UnsupportedVersion::TooNew(self.clone())),
        }
    }
}

impl fmt::Display for HelmVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shapes_helm_prints() {
        type Expected = Option<(u32, u32, u32, Option<&'static str>)>;
        let cases: &[(&str, Expected)] = &[
            ("v3.17.0", Some((3, 17, 0, None))),
            ("v3.22.0+g1a2b3c4\n", Some((3, 22, 0, None))),
            ("v4.1", Some((4, 1, 0, None))),
            ("v4.0.0-rc.1", Some((4, 0, 0, Some("rc.1")))),
            ("4.3.1", Some((4, 3, 1, None))),
            ("  v3.16.4  ", Some((3, 16, 4, None))),
            ("", None),
            ("version.BuildInfo{Version:\"v3.17.0\"}", None),
            ("v3", None),
            ("v3.x.1", None),
            ("v3.17.0.1", None),
            ("v3.17.0-", None),
        ];
        for (text, expected) in cases {
            let parsed =
                HelmVersion::parse(text).map(|v| (v.major, v.minor, v.patch, v.pre.clone()));
            let expected = expected.map(|(a, b, c, d)| (a, b, c, d.map(str::to_owned)));
            assert_eq!(parsed, expected, "parsing {text:?}");
        }
    }

    /// semver refuses what the hand-written parser let through: leading zeros and an
    /// empty or non-ASCII pre-release; a pre-release of a two-number version still parses.
    #[test]
    fn semver_edge_cases() {
        for text in ["v3.017.0", "v3.17.0-rc_1", "v3.17.0+", "v4.1-"] {
            assert_eq!(HelmVersion::parse(text), None, "{text}");
        }
        let rc = HelmVersion::parse("v4.1-rc.1").expect("parses");
        assert_eq!(
            (rc.minor, rc.patch, rc.pre.as_deref()),
            (1, 0, Some("rc.1"))
        );
        assert_eq!(rc.to_string(), "4.1.0-rc.1");
    }

    #[test]
    fn support_policy_names_the_missing_feature() {
        let v = |s: &str| HelmVersion::parse(s).expect("test version parses");
        assert_eq!(v("v3.17.0").support(), Ok(HelmMajor::V3));
        assert_eq!(v("v3.22.0").support(), Ok(HelmMajor::V3));
        assert_eq!(v("v4.0.0").support(), Ok(HelmMajor::V4));
        assert_eq!(v("v4.3.1").support(), Ok(HelmMajor::V4));
        let old = v("v3.16.4").support().expect_err("3.16 is too old");
        assert_eq!(
            old.to_string(),
            "Helm 3.16.4 lacks --take-ownership; install Helm 3.17+ or 4.x"
        );
        assert!(matches!(
            v("v2.17.0").support(),
            Err(UnsupportedVersion::Ancient(_))
        ));
        assert!(matches!(
            v("v5.0.0").support(),
            Err(UnsupportedVersion::TooNew(_))
        ));
    }
}
