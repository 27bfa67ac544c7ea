//! `cargo scf run`: the function built for this host and served as SCF serves it — on the port
//! its start-up line names, with SCF's environment, limits and filesystem (said to be for
//! testing, not a sandbox, and as root what does not hold), signals passed on once — and run
//! as a job function, with its exit code, on the largest event that can be passed; a build
//! stopped or killed with the tool leaves nothing behind. Loopback only; every process is
//! killed on every path (`common/function.rs`).

#[path = "common/function.rs"]
mod function;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use function::{BUILD, Project, SHORT, Tool, get, gone, number_after};

/// One project for every test here (none edits it), so it builds once.
fn project() -> &'static Project {
    static PROJECT: OnceLock<Project> = OnceLock::new();
    PROJECT.get_or_init(|| Project::kept("scf-run-probe", "hello"))
}

/// `cargo scf run --port 0 ARGS` in the project: the tool, and the port its function's
/// start-up line names.
fn serve(args: &[&str], env: &[(&str, &str)]) -> (Tool, u16) {
    let mut all = vec!["run", "--port", "0"];
    all.extend(args);
    let tool = Tool::start(&project().dir, &all, env);
    let line = tool
        .out
        .wait_for(BUILD, |l| l.contains(" listening on 0.0.0.0:"))
        .unwrap_or_else(|| panic!("no start-up line\n{}", tool.output()));
    let port = u16::try_from(number_after(&line, "0.0.0.0:")).unwrap();
    assert_ne!(port, 0);
    (tool, port)
}

/// The function's pid (it asks the function), killed with the tool.
fn function_pid(tool: &mut Tool, port: u16) -> u32 {
    let (status, body) = get(port, "/pid", SHORT);
    assert_eq!(status, 200, "{body}");
    let pid = body.parse().unwrap();
    tool.owns(pid);
    pid
}

/// A directory in /tmp, which the function may write to wherever it runs.
fn tmp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("scf-run-")
        .tempdir_in("/tmp")
        .unwrap()
}

fn wait_for_file(path: &std::path::Path) {
    let end = Instant::now() + SHORT;
    while !path.exists() {
        assert!(Instant::now() < end, "{} never came", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn test_run_serves_on_the_port_it_names_with_scfs_environment_and_limits() {
    let (mut tool, port) = serve(
        &[
            "--region",
            "ap-shanghai",
            "--env",
            "FROM_FLAG=flag",
            "-e",
            "SCF_NAMESPACE=mine",
        ],
        &[
            ("FROM_SHELL", "shell"),
            ("TMPDIR", "/somewhere"),
            ("USER", "someone"),
            // Left in a web function's environment, it would make it a job.
            ("SCF_CUSTOM_CONTAINER_EVENT", "{}"),
        ],
    );
    assert_eq!(get(port, "/", SHORT), (200, "hello".to_owned()));
    let name = project().name.as_str();
    for (var, value) in [
        ("SCF_FUNCTIONNAME", name),
        ("SCF_FUNCTIONVERSION", "$LATEST"),
        ("SCF_NAMESPACE", "mine"),
        ("TENCENTCLOUD_RUNENV", "SCF"),
        ("TENCENTCLOUD_REGION", "ap-shanghai"),
        ("TENCENTCLOUD_APPID", "1250000000"),
        ("TENCENTCLOUD_UIN", "100000000001"),
        ("USER_CODE_ROOT", "/var/user/"),
        ("USER", "qcloud"),
        ("PORT", "0"),
        ("FROM_SHELL", "shell"),
        ("FROM_FLAG", "flag"),
        ("TMPDIR", "<unset>"),
        ("SCF_CUSTOM_CONTAINER_EVENT", "<unset>"),
    ] {
        let (status, got) = get(port, &format!("/env?name={var}"), SHORT);
        assert_eq!((status, got.as_str()), (200, value), "{var}");
    }

    let pid = function_pid(&mut tool, port);
    // A process group of its own: a terminal's Ctrl-C reaches it only through the tool.
    // SAFETY: getpgid only reads.
    assert_eq!(unsafe { libc::getpgid(pid as i32) }, pid as i32);
    let status = tool
        .err
        .wait_for(SHORT, |l| l.starts_with("cargo scf run: "))
        .unwrap();
    assert!(status.contains("1024 descriptors"), "{status}");
    // Fidelity, not isolation: said so, and as root, what does not hold.
    assert!(
        status.contains("as on SCF, for testing — not a sandbox: "),
        "{status}"
    );
    // SAFETY: getuid has no preconditions.
    let root = unsafe { libc::getuid() } == 0 && cfg!(target_os = "linux");
    let warning = tool
        .err
        .wait_for(if root { SHORT } else { Duration::ZERO }, |l| {
            l.starts_with("cargo scf run: warning: ")
        });
    if root {
        let warning = warning.unwrap_or_else(|| panic!("no warning as root\n{}", tool.output()));
        assert!(
            warning.contains("the limit of 1024 processes and threads is not enforced"),
            "{warning}"
        );
    } else {
        assert_eq!(warning, None);
    }
    if cfg!(target_os = "linux") {
        let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let limit = |name: &str| -> (String, String) {
            let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
            let mut v = line[name.len()..].split_whitespace();
            (v.next().unwrap().into(), v.next().unwrap().into())
        };
        assert_eq!(
            limit("Max open files"),
            ("1024".into(), "1024".into()),
            "{limits}"
        );
        let (soft, hard) = limit("Max processes");
        assert_eq!(soft, hard, "{limits}");
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            assert_eq!(soft, "1024", "{limits}");
        } else {
            // 1,024 above the threads the user runs already (Linux counts them all).
            assert!(soft.parse::<u64>().unwrap() >= 1024, "{limits}");
        }
        assert_eq!(
            std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
            std::path::Path::new("/")
        );
    }
}

#[test]
fn test_run_leaves_only_tmp_writable_where_landlock_applies() {
    let (_tool, port) = serve(&[], &[]);
    let status = _tool
        .err
        .wait_for(SHORT, |l| l.starts_with("cargo scf run: "))
        .unwrap();
    let tmp = tmp_dir();
    let inside = tmp.path().join("written");
    let (_, answer) = get(port, &format!("/write?path={}", inside.display()), SHORT);
    assert_eq!(answer, "written");
    assert!(inside.exists());

    // A directory of the test's outside /tmp (wherever the repository is: a clone may be
    // under /tmp itself).
    let Some(elsewhere) = [
        Some(project().dir.clone()),
        std::env::var_os("HOME").map(std::path::PathBuf::from),
        Some("/var/tmp".into()),
    ]
    .into_iter()
    .flatten()
    .filter(|d| !d.starts_with("/tmp"))
    .find_map(|d| {
        tempfile::Builder::new()
            .prefix("scf-run-")
            .tempdir_in(d)
            .ok()
    }) else {
        eprintln!("no writable directory outside /tmp here: the restriction is not checked");
        return;
    };
    let outside = elsewhere.path().join("written-by-the-function");
    let (_, answer) = get(port, &format!("/write?path={}", outside.display()), SHORT);
    if status.contains("only /tmp is writable (Landlock") {
        assert_eq!(answer, "PermissionDenied", "{status}");
        assert!(!outside.exists());
    } else {
        eprintln!("Landlock does not apply on this host, not checked: {status}");
        assert_eq!(answer, "written");
        let _ = std::fs::remove_file(&outside);
    }
}

#[test]
fn test_run_event_runs_a_job_function_and_exits_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let event = dir.path().join("timer.json");
    std::fs::write(&event, br#"{"Type":"timer","TriggerName":"t"}"#).unwrap();
    let mut tool = Tool::start(
        &project().dir,
        &["run", "--event", event.to_str().unwrap()],
        &[("PORT", "8080")],
    );
    let status = tool.wait(BUILD).expect("the job ends");
    assert_eq!(status.code(), Some(0), "{}", tool.output());
    let line = tool
        .out
        .wait_for(SHORT, |l| {
            l.starts_with("{\"PORT\"") || l.contains("\"event\"")
        })
        .unwrap_or_else(|| panic!("no answer\n{}", tool.output()));
    let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(answer["event"]["Type"], "timer");
    assert_eq!(answer["SCF_FUNCTIONNAME"], project().name.as_str());
    assert_eq!(answer["PORT"], serde_json::Value::Null, "a job has no port");

    // From stdin: the function's error is the job's failure (1), a malformed event is 2.
    for (input, code) in [(&br#"{"fail":true}"#[..], 1), (b"{oops", 2)] {
        let mut tool = Tool::start_with_input(
            &project().dir,
            &["run", "--event", "-"],
            &[],
            Some(input.to_vec()),
        );
        let status = tool.wait(BUILD).expect("the job ends");
        assert_eq!(status.code(), Some(code), "{}", tool.output());
        assert!(
            tool.err
                .wait_for(SHORT, |l| l
                    == format!(
                        "cargo scf run: the function exited with status {code}"
                    ))
                .is_some(),
            "{}",
            tool.output()
        );
    }

    // The largest event taken runs (every event taken can be passed to the function); one
    // byte more is refused before anything is built or run.
    let max = max_event_bytes();
    let largest = dir.path().join("largest.json");
    let mut json = br#"{"Type":"timer","pad":""#.to_vec();
    json.resize(max - 2, b'x');
    json.extend_from_slice(br#""}"#);
    assert_eq!(json.len(), max);
    std::fs::write(&largest, &json).unwrap();
    let mut tool = Tool::start(
        &project().dir,
        &["run", "--event", largest.to_str().unwrap()],
        &[],
    );
    let status = tool.wait(BUILD).expect("the job ends");
    assert_eq!(status.code(), Some(0), "{}", tool.output());
    let line = tool
        .out
        .wait_for(SHORT, |l| l.contains("\"event\""))
        .unwrap_or_else(|| panic!("no answer\n{}", tool.output()));
    let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        answer["event"]["pad"].as_str().map(str::len),
        Some(max - 25)
    );

    let big = dir.path().join("big.json");
    std::fs::write(&big, vec![b' '; max + 1]).unwrap();
    let mut tool = Tool::start(
        &project().dir,
        &["run", "--event", big.to_str().unwrap()],
        &[],
    );
    let status = tool.wait(SHORT).expect("refused at once");
    assert_eq!(status.code(), Some(1));
    let said = if max < 131_072 {
        format!("over {max} bytes, the most this host can pass in SCF_CUSTOM_CONTAINER_EVENT")
    } else {
        "over SCF's 131072-byte limit".to_owned()
    };
    assert!(
        tool.err.wait_for(SHORT, |l| l.contains(&said)).is_some(),
        "{}",
        tool.output()
    );
    assert_eq!(
        tool.err
            .count(|l| l.contains("Compiling") || l.contains("Finished")),
        0,
        "refused before building\n{}",
        tool.output()
    );
}

/// The longest event `--event` takes: SCF's 128 KiB, less on Linux by what `MAX_ARG_STRLEN`
/// (32 pages) leaves for the event beside `SCF_CUSTOM_CONTAINER_EVENT=` and the NUL.
fn max_event_bytes() -> usize {
    if cfg!(target_os = "linux") {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        (32 * page - "SCF_CUSTOM_CONTAINER_EVENT=".len() - 1).min(131_072)
    } else {
        131_072
    }
}

/// A terminal's Ctrl-C goes to the tool's whole process group; the function, in a group of its
/// own, gets it once, from the tool: it finishes the request in flight within its grace period
/// and exits 0 (a second signal would have stopped it at once, cutting the request).
#[test]
fn test_ctrl_c_reaches_the_function_once_and_its_request_in_flight_finishes() {
    let (mut tool, port) = serve(&[], &[]);
    let pid = function_pid(&mut tool, port);
    let tmp = tmp_dir();
    let mark = tmp.path().join("in-flight");
    let path = format!("/sleep?ms=700&mark={}", mark.display());
    let slow = std::thread::spawn(move || get(port, &path, SHORT));
    wait_for_file(&mark);
    tool.signal_group(libc::SIGINT);
    assert_eq!(slow.join().unwrap(), (200, "slept".to_owned()));
    let status = tool.wait(SHORT).expect("the tool exits");
    assert_eq!(status.code(), Some(0), "{}", tool.output());
    assert!(gone(pid, SHORT));
    assert!(
        tool.out.count(|l| l.contains("shutting down")) == 1,
        "{}",
        tool.output()
    );
}

#[test]
fn test_sigterm_to_run_stops_the_function_within_its_grace_and_run_exits_with_its_status() {
    let (mut tool, port) = serve(&["-e", "SCF_LEAN_SHUTDOWN_GRACE_MS=500"], &[]);
    let pid = function_pid(&mut tool, port);
    let t = Instant::now();
    tool.signal(libc::SIGTERM);
    let status = tool.wait(SHORT).expect("the tool exits");
    assert_eq!(status.code(), Some(0), "{}", tool.output());
    assert!(
        t.elapsed() < Duration::from_millis(500) + Duration::from_secs(1),
        "{:?}",
        t.elapsed()
    );
    assert!(gone(pid, SHORT));
}

/// A tool killed outright (SIGKILL: no forwarding possible) takes its function with it.
#[cfg(target_os = "linux")]
#[test]
fn test_a_killed_run_leaves_no_function_behind() {
    let (mut tool, port) = serve(&[], &[]);
    let pid = function_pid(&mut tool, port);
    tool.signal(libc::SIGKILL);
    assert!(gone(pid, SHORT), "the function outlived the tool");
}

/// A Ctrl-C during the build (to the tool's process group, as a terminal sends it) stops
/// cargo's own process group through the tool, build script included; the tool exits 130.
/// Killed outright, the tool takes cargo with it (Linux's parent-death signal).
#[cfg(target_os = "linux")]
#[test]
fn test_ctrl_c_or_sigkill_during_the_build_leaves_no_build_behind() {
    let project = function::Project::new("scf-run-blocked", "blocked");
    project.block_builds();
    for stop in [libc::SIGINT, libc::SIGKILL] {
        let marks = tmp_dir();
        let mut tool = Tool::start(
            &project.dir,
            &["run", "--port", "0"],
            &[("SCF_TEST_BUILD_MARKS", marks.path().to_str().unwrap())],
        );
        let (script, cargo) = function::blocked_build(marks.path());
        tool.owns(script);
        tool.owns(cargo);
        // SAFETY: getpgid only reads.
        assert_eq!(unsafe { libc::getpgid(cargo as i32) }, cargo as i32);
        if stop == libc::SIGINT {
            tool.signal_group(libc::SIGINT);
            let status = tool.wait(SHORT).expect("the tool exits");
            assert_eq!(status.code(), Some(130), "{}", tool.output());
            assert!(gone(script, SHORT), "the build script outlived the tool");
        } else {
            tool.signal(libc::SIGKILL);
            tool.wait(SHORT).expect("killed");
        }
        assert!(gone(cargo, SHORT), "cargo outlived the tool ({stop})");
    }
}
