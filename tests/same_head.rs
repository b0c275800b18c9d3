//! Two sensors writing CSV with the same long header into one watched folder: the real daemon
//! stores every row of both, and a third sensor started after a restart is read from its start.

mod common;
#[path = "common/daemon.rs"]
mod daemon;
#[path = "common/db.rs"]
mod db;
#[path = "common/wait.rs"]
mod wait;

use daemon::Daemon;
use db::alerts;
use std::path::Path;
use std::time::Duration;
use wait::wait_for_change_in;

fn csv(sensor: u64, rows: u64) -> String {
    let extra: Vec<String> = (0..12)
        .map(|i| format!("sensor_extra_column_{i:02}"))
        .collect();
    let mut text = format!(
        "timestamp,src_ip,src_port,dest_ip,dest_port,proto,signature_id,signature,category,severity,host,{}\n",
        extra.join(",")
    );
    for i in 0..rows {
        text.push_str(&format!(
            "2022-02-16T14:33:{:02}.000000+0000,10.{sensor}.0.{i},5000,40.110.35.23,80,TCP,58990,SENSOR {sensor} alert {i},A Network Trojan was detected,1,sensor{sensor}{}\n",
            i % 60,
            ",".repeat(12)
        ));
    }
    text
}

fn watch(home: &Path, logs: &Path) -> Daemon {
    Daemon::start(home, &["daemon", "--watch", &logs.display().to_string()])
}

#[test]
fn csv_sensors_with_the_same_long_header_are_all_stored() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let data = home.path().join("data");
    // Made first so the waits below can watch it for the database's writes.
    std::fs::create_dir_all(&data).expect("mkdir data");
    let db = data.join("vigil.db");
    std::fs::write(logs.join("sensor1.csv"), csv(1, 10)).expect("write");
    std::fs::write(logs.join("sensor2.csv"), csv(2, 10)).expect("write");
    let daemon = watch(home.path(), &logs);
    wait_for_change_in(
        &data,
        Duration::from_secs(60),
        "20 alerts from two sensors",
        || alerts(&db) >= 20,
    );
    drop(daemon);

    // After a restart, a third sensor with the same header, its first rows included.
    std::fs::write(logs.join("sensor3.csv"), csv(3, 15)).expect("write");
    let _daemon = watch(home.path(), &logs);
    wait_for_change_in(
        &data,
        Duration::from_secs(60),
        "35 alerts from three sensors",
        || alerts(&db) >= 35,
    );
    assert_eq!(alerts(&db), 35, "each row once");
}

/// A sensor file deleted while vigil was stopped, and another sensor's file with the same
/// header and rows of the same length written in its place: a line end falls exactly where
/// the deleted file had been read to, but the bytes before it differ, so the new file is no
/// copy and is read from its start.
#[test]
fn a_new_file_whose_line_end_falls_at_an_old_checkpoint_is_read_from_its_start() {
    let home = tempfile::tempdir().expect("tempdir");
    let logs = home.path().join("logs");
    std::fs::create_dir_all(&logs).expect("mkdir");
    let data = home.path().join("data");
    // Made first so the waits below can watch it for the database's writes.
    std::fs::create_dir_all(&data).expect("mkdir data");
    let db = data.join("vigil.db");
    std::fs::write(logs.join("sensor1.csv"), csv(1, 10)).expect("write");
    let daemon = watch(home.path(), &logs);
    wait_for_change_in(
        &data,
        Duration::from_secs(60),
        "10 alerts from sensor 1",
        || alerts(&db) >= 10,
    );
    drop(daemon);

    std::fs::remove_file(logs.join("sensor1.csv")).expect("delete");
    let replacement = csv(4, 10);
    assert_eq!(
        replacement.len(),
        csv(1, 10).len(),
        "rows of the same length"
    );
    std::fs::write(logs.join("sensor4.csv"), replacement).expect("write");
    let _daemon = watch(home.path(), &logs);
    wait_for_change_in(
        &data,
        Duration::from_secs(60),
        "10 alerts from sensor 4",
        || alerts(&db) >= 20,
    );
    assert_eq!(alerts(&db), 20, "each row once");
}
