//! Readers and writers of `sinkflow::io`: formats, orders, dtypes, and typed errors.

use std::path::PathBuf;

use npyz::WriterBuilder;
use sinkflow::io::{read_csv, read_npy, read_points, read_weights, write_npy_2d, write_npy_3d};
use sinkflow::sinkhorn::SinkhornError;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sinkflow-io-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_with<T: npyz::AutoSerialize + Copy>(
    path: &PathBuf,
    shape: &[u64],
    order: npyz::Order,
    data: &[T],
) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .order(order)
        .writer(std::io::BufWriter::new(f))
        .begin_nd()
        .unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

#[test]
fn npy_roundtrip_and_orders() {
    let d = tmpdir("npy");
    let data = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]; // 3 x 2 row-major
    let p = d.join("c.npy");
    write_npy_2d(&p, 3, 2, &data).unwrap();
    let a = read_points(&p).unwrap();
    assert_eq!((a.rows, a.cols), (3, 2));
    assert_eq!(a.data, data);
    // Fortran order: the file stores columns; the reader returns row-major
    let pf = d.join("f.npy");
    write_with(
        &pf,
        &[3, 2],
        npyz::Order::Fortran,
        &[1.0f64, 3.0, 5.0, 2.0, 4.0, 6.0],
    );
    assert_eq!(read_npy(&pf).unwrap().data, data);
    // float32
    let p32 = d.join("f32.npy");
    write_with(
        &p32,
        &[3, 2],
        npyz::Order::C,
        &[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.5],
    );
    let a = read_points(&p32).unwrap();
    assert_eq!(a.data[5], 6.5);
    // weights: (n,) and (n, 1)
    let pw = d.join("w.npy");
    write_with(&pw, &[3], npyz::Order::C, &[0.2f64, 0.3, 0.5]);
    assert_eq!(read_weights(&pw).unwrap(), vec![0.2, 0.3, 0.5]);
    let pw1 = d.join("w1.npy");
    write_npy_2d(&pw1, 3, 1, &[0.2, 0.3, 0.5]).unwrap();
    assert_eq!(read_weights(&pw1).unwrap(), vec![0.2, 0.3, 0.5]);
    // weights from a 2-D array are rejected
    assert!(matches!(
        read_weights(&p),
        Err(SinkhornError::Malformed { .. })
    ));
    // 3-D trajectories
    let p3 = d.join("traj.npy");
    let traj: Vec<f64> = (0..24).map(f64::from).collect();
    write_npy_3d(&p3, [2, 4, 3], &traj).unwrap();
    let f = npyz::NpyFile::new(std::fs::File::open(&p3).unwrap()).unwrap();
    assert_eq!(f.shape(), &[2, 4, 3]);
    assert_eq!(f.into_vec::<f64>().unwrap(), traj);
    assert!(read_points(&p3).is_err()); // 3-D is not a point array
    assert!(write_npy_3d(&p3, [2, 4, 4], &traj).is_err());
    // integers are not accepted
    let pi = d.join("int.npy");
    write_with(&pi, &[2, 2], npyz::Order::C, &[1i64, 2, 3, 4]);
    match read_points(&pi) {
        Err(SinkhornError::Malformed { message, .. }) => assert!(message.contains("dtype")),
        other => panic!("{other:?}"),
    }
    // NaN inside a valid npy
    let pn = d.join("nan.npy");
    write_npy_2d(&pn, 1, 2, &[0.0, f64::NAN]).unwrap();
    assert!(matches!(
        read_points(&pn),
        Err(SinkhornError::Malformed { .. })
    ));
    // garbage with an .npy extension
    let pg = d.join("garbage.npy");
    std::fs::write(&pg, b"hello").unwrap();
    assert!(matches!(read_points(&pg), Err(SinkhornError::Io { .. })));
}

#[test]
fn csv_reading_and_errors() {
    let d = tmpdir("csv");
    let p = d.join("a.csv");
    std::fs::write(
        &p,
        "# comment\n0, 1.5\n\n-2,3e-1\n  # indented comment\n4,5\n",
    )
    .unwrap();
    let a = read_csv(&p).unwrap();
    assert_eq!((a.rows, a.cols), (3, 2));
    assert_eq!(a.data, vec![0.0, 1.5, -2.0, 0.3, 4.0, 5.0]);
    // a header line: clear error naming line 1 and the header
    let ph = d.join("h.csv");
    std::fs::write(&ph, "x,y\n0,1\n").unwrap();
    match read_points(&ph) {
        Err(SinkhornError::Malformed { line, message, .. }) => {
            assert_eq!(line, 1);
            assert!(message.contains("header"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // a numeric first line is data, not a header
    let pn = d.join("n.csv");
    std::fs::write(&pn, "1,2\n3,4\n").unwrap();
    assert_eq!(read_points(&pn).unwrap().rows, 2);
    // ragged rows, with the line number
    let pr = d.join("r.csv");
    std::fs::write(&pr, "1,2\n# c\n3\n").unwrap();
    match read_points(&pr) {
        Err(SinkhornError::Malformed { line, .. }) => assert_eq!(line, 3),
        other => panic!("{other:?}"),
    }
    // bad number later in the file
    let pb = d.join("b.csv");
    std::fs::write(&pb, "1,2\n3,abc\n").unwrap();
    match read_points(&pb) {
        Err(SinkhornError::Malformed { line, message, .. }) => {
            assert_eq!(line, 2);
            assert!(!message.contains("header"));
        }
        other => panic!("{other:?}"),
    }
    // inf / nan spelled out
    let pi = d.join("i.csv");
    std::fs::write(&pi, "1,inf\n").unwrap();
    assert!(matches!(
        read_points(&pi),
        Err(SinkhornError::Malformed { .. })
    ));
    // empty file
    let pe = d.join("e.csv");
    std::fs::write(&pe, "# nothing\n").unwrap();
    assert!(matches!(
        read_points(&pe),
        Err(SinkhornError::Malformed { .. })
    ));
    // weights: one per line, or one line
    let pw = d.join("w.csv");
    std::fs::write(&pw, "0.5\n0.5\n").unwrap();
    assert_eq!(read_weights(&pw).unwrap(), vec![0.5, 0.5]);
    std::fs::write(&pw, "0.25,0.75\n").unwrap();
    assert_eq!(read_weights(&pw).unwrap(), vec![0.25, 0.75]);
    // missing file and unknown extension
    assert!(matches!(
        read_points(d.join("missing.csv")),
        Err(SinkhornError::Io { .. })
    ));
    assert!(matches!(
        read_points(d.join("a.json")),
        Err(SinkhornError::Io { .. })
    ));
    std::fs::remove_dir_all(&d).ok();
}
