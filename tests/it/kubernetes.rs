//! The Kubernetes example (`examples/kubernetes/`) is valid against the Kubernetes schemas:
//! `scripts/validate-k8s` checks every manifest strictly (an unknown or misspelt field
//! fails), without a cluster.

use std::process::Command;

#[test]
fn the_indexed_job_example_validates_against_the_kubernetes_schemas() {
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash")
        .arg(format!("{root}/scripts/validate-k8s"))
        .current_dir(root)
        .output()
        .expect("running scripts/validate-k8s");
    assert!(
        out.status.success(),
        "scripts/validate-k8s failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
