//! JSON files of superopt's user cache directory (calibration, tuned launches).

/// A JSON file of the user cache directory, if it is there and parses.
pub fn read<T: serde::de::DeserializeOwned>(name: &str) -> Option<T> {
    let path = dirs::cache_dir()?.join("superopt").join(name);
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Writes a JSON file of the user cache directory; a cache that cannot be written only
/// costs the next run the time to measure again.
pub fn write<T: serde::Serialize>(name: &str, value: &T) {
    if let Some(dir) = dirs::cache_dir().map(|d| d.join("superopt")) {
        let text = serde_json::to_vec_pretty(value).expect("cache entries serialize");
        let _ = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(dir.join(name), text));
    }
}
