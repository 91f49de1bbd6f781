//! What the results were measured on: the CPU model and how many CPUs the
//! process may use. Cloud VMs of one machine type are not always the same CPU
//! (this project's has been an AMD EPYC on some days and an Intel Xeon on others),
//! and ratios and scaling differ between them, so every result names its host.

/// The CPU model (from `/proc/cpuinfo`, "unknown CPU" elsewhere) and the CPUs
/// available to this process, e.g. `Intel(R) Xeon(R) Processor, 2 CPUs`.
pub(crate) fn describe() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    format!("{}, {cpus} CPUs", model(&cpuinfo).unwrap_or("unknown CPU"))
}

/// The first `model name` of a `/proc/cpuinfo` text.
fn model(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim()).filter(|v| !v.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_the_first_model_name_line() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Processor\n\
                    processor\t: 1\nmodel name\t: Other\n";
        assert_eq!(model(text), Some("Intel(R) Xeon(R) Processor"));
        assert_eq!(model("processor\t: 0\n"), None);
        assert_eq!(model("model name\t:\n"), None);
        assert!(describe().ends_with(" CPUs"));
    }
}
