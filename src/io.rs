//! Reading point clouds and weights, writing trajectories.
//!
//! * Points: a 2-D array, one point per row, from
//!   * `.npy` — float64 or float32, C or Fortran order (via `npyz`);
//!   * `.csv` — one point per row, comma-separated; blank lines and lines starting with `#`
//!     are skipped; every row must have the same number of entries. A first line that is not
//!     numeric (a header) is rejected with an error that says so.
//! * Weights: a 1-D array (`.npy` of shape `(n,)` or `(n, 1)`, or a `.csv` with one value
//!   per row, or all values on one row).
//! * Trajectories: [`write_npy_2d`] and [`write_npy_3d`] write float64 C-order arrays.
//!
//! Every failure is a [`SinkhornError::Io`] (could not open / not an npy file) or
//! [`SinkhornError::Malformed`] (with the path and, for CSV, the 1-based line).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

use crate::sinkhorn::SinkhornError;

/// A dense row-major 2-D array read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct Array2 {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row-major entries.
    pub data: Vec<f64>,
    /// Unit roundoff of the values as stored (2⁻⁵³ for float64 and text, 2⁻²⁴ for float32).
    pub unit_roundoff: f64,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> SinkhornError {
    SinkhornError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

fn malformed(path: &Path, line: usize, message: impl Into<String>) -> SinkhornError {
    SinkhornError::Malformed {
        path: path.display().to_string(),
        line,
        message: message.into(),
    }
}

enum Format {
    Npy,
    Csv,
}

fn format_of(path: &Path) -> Result<Format, SinkhornError> {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase())
        .as_deref()
    {
        Some("npy") => Ok(Format::Npy),
        Some("csv") | Some("txt") => Ok(Format::Csv),
        _ => Err(io_err(
            path,
            "unknown file type (expected a .npy or .csv extension)",
        )),
    }
}

/// Read a 2-D array of points (`.npy` or `.csv`, see the module docs). A 1-D `.npy` array
/// of length `n` is read as `n` points in dimension 1.
pub fn read_points(path: impl AsRef<Path>) -> Result<Array2, SinkhornError> {
    let path = path.as_ref();
    let a = match format_of(path)? {
        Format::Npy => read_npy(path)?,
        Format::Csv => read_csv(path)?,
    };
    if a.rows == 0 || a.cols == 0 {
        return Err(malformed(
            path,
            0,
            format!("no points (array of shape {}×{})", a.rows, a.cols),
        ));
    }
    if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
        return Err(malformed(
            path,
            0,
            format!(
                "non-finite value {} at row {}, column {}",
                a.data[i],
                i / a.cols + 1,
                i % a.cols + 1
            ),
        ));
    }
    Ok(a)
}

/// Read a weight vector (`.npy` of shape `(n,)` or `(n, 1)`; `.csv` one value per line or
/// one line of values). Values are returned as read (validation of signs and sums is done by
/// [`crate::sinkhorn::PointCloud`]).
pub fn read_weights(path: impl AsRef<Path>) -> Result<Vec<f64>, SinkhornError> {
    let path = path.as_ref();
    let a = match format_of(path)? {
        Format::Npy => read_npy(path)?,
        Format::Csv => read_csv(path)?,
    };
    if a.rows != 1 && a.cols != 1 {
        return Err(malformed(
            path,
            0,
            format!(
                "weights must be a 1-D array, got shape {}×{}",
                a.rows, a.cols
            ),
        ));
    }
    if a.data.is_empty() {
        return Err(malformed(path, 0, "no weights"));
    }
    // Weights stored in single precision that summed to one before rounding sum to one only
    // within n × 2⁻²⁴, far outside the engine's 1e-12 n check: they are rescaled to sum to one
    // exactly when (and only when) they are within that rounding of it.
    let mut w = a.data;
    if a.unit_roundoff > f64::EPSILON {
        let sum: f64 = w.iter().sum();
        if (sum - 1.0).abs() <= 2.0 * w.len() as f64 * a.unit_roundoff {
            w.iter_mut().for_each(|t| *t /= sum);
        }
    }
    Ok(w)
}

/// Read a `.npy` array of float64 or float32 (1-D as `n × 1`, 2-D as is), in either order.
pub fn read_npy(path: impl AsRef<Path>) -> Result<Array2, SinkhornError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| io_err(path, e))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| io_err(path, format!("not a valid .npy file ({e})")))?;
    let shape: Vec<u64> = npy.shape().to_vec();
    let order = npy.order();
    let dtype = npy.dtype();
    let (rows, cols) = match shape.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        s => {
            return Err(malformed(
                path,
                0,
                format!("expected a 1-D or 2-D array, got {} dimensions", s.len()),
            ))
        }
    };
    // The header's shape is checked against the file's size before anything is allocated: a
    // corrupt or hostile header must not overflow the size computation or ask for terabytes.
    let file_bytes = std::fs::metadata(path).map_err(|e| io_err(path, e))?.len();
    let values = rows.checked_mul(cols);
    let item = dtype.num_bytes().unwrap_or(8) as u64;
    let fits = values
        .and_then(|v| v.checked_mul(item))
        .is_some_and(|b| b <= file_bytes);
    if !fits {
        return Err(malformed(
            path,
            0,
            format!(
                "the header declares shape ({}), more values than the file's {file_bytes} bytes can hold (a corrupt or truncated file)",
                shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let (rows, cols) = (rows as usize, cols as usize);
    let data: Vec<f64> = match npy.try_data::<f64>() {
        Ok(r) => r
            .collect::<Result<_, _>>()
            .map_err(|e| malformed(path, 0, format!("truncated data ({e})")))?,
        Err(npy) => match npy.try_data::<f32>() {
            Ok(r) => r
                .map(|v| v.map(f64::from))
                .collect::<Result<_, _>>()
                .map_err(|e| malformed(path, 0, format!("truncated data ({e})")))?,
            Err(_) => {
                return Err(malformed(
                    path,
                    0,
                    format!(
                        "unsupported dtype {} (expected float64 '<f8' or float32 '<f4')",
                        dtype.descr()
                    ),
                ))
            }
        },
    };
    if data.len() != rows * cols {
        return Err(malformed(
            path,
            0,
            format!("expected {} values, read {}", rows * cols, data.len()),
        ));
    }
    let data = match order {
        npyz::Order::C => data,
        npyz::Order::Fortran => {
            let mut out = vec![0.0; rows * cols];
            for i in 0..rows {
                for k in 0..cols {
                    out[i * cols + k] = data[k * rows + i];
                }
            }
            out
        }
    };
    let unit_roundoff = if item == 4 {
        f64::from(f32::EPSILON) / 2.0
    } else {
        f64::EPSILON / 2.0
    };
    Ok(Array2 {
        rows,
        cols,
        data,
        unit_roundoff,
    })
}

/// Read a CSV array (module docs). Numbers may be surrounded by spaces.
pub fn read_csv(path: impl AsRef<Path>) -> Result<Array2, SinkhornError> {
    let path = path.as_ref();
    let mut text = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .map_err(|e| io_err(path, e))?;
    // A UTF-8 byte-order mark (spreadsheet exports) is not part of the first number.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut data = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    let mut first = true;
    for (ln, line) in text.lines().enumerate() {
        let line_no = ln + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = t.split(',').map(str::trim).collect();
        let mut row = Vec::with_capacity(fields.len());
        for (k, s) in fields.iter().enumerate() {
            match s.parse::<f64>() {
                Ok(v) => row.push(v),
                Err(_) => {
                    let hint = if first {
                        " (a header line? remove it or comment it out with '#')"
                    } else {
                        ""
                    };
                    return Err(malformed(
                        path,
                        line_no,
                        format!("field {} '{s}' is not a number{hint}", k + 1),
                    ));
                }
            }
        }
        first = false;
        match cols {
            None => cols = Some(row.len()),
            Some(c) if c != row.len() => {
                return Err(malformed(
                    path,
                    line_no,
                    format!("{} fields but the first row has {c}", row.len()),
                ))
            }
            _ => {}
        }
        data.extend(row);
        rows += 1;
    }
    Ok(Array2 {
        rows,
        cols: cols.unwrap_or(0),
        data,
        unit_roundoff: f64::EPSILON / 2.0,
    })
}

fn write_npy(path: &Path, shape: &[u64], data: &[f64]) -> Result<(), SinkhornError> {
    use npyz::WriterBuilder;
    let expected: u64 = shape.iter().product();
    if expected as usize != data.len() {
        return Err(SinkhornError::DimensionMismatch {
            what: format!("number of values vs shape {shape:?}"),
            expected: expected as usize,
            got: data.len(),
        });
    }
    let file = File::create(path).map_err(|e| io_err(path, e))?;
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(|e| io_err(path, e))?;
    w.extend(data.iter().copied())
        .map_err(|e| io_err(path, e))?;
    w.finish().map_err(|e| io_err(path, e))
}

/// Write a `rows × cols` float64 array (row-major `data`) as C-order `.npy`.
pub fn write_npy_2d(
    path: impl AsRef<Path>,
    rows: usize,
    cols: usize,
    data: &[f64],
) -> Result<(), SinkhornError> {
    write_npy(path.as_ref(), &[rows as u64, cols as u64], data)
}

/// Write a `t × n × d` float64 array (e.g. a particle trajectory: `t` frames of `n` points in
/// dimension `d`, C order: frame-major) as `.npy`.
pub fn write_npy_3d(
    path: impl AsRef<Path>,
    shape: [usize; 3],
    data: &[f64],
) -> Result<(), SinkhornError> {
    write_npy(
        path.as_ref(),
        &[shape[0] as u64, shape[1] as u64, shape[2] as u64],
        data,
    )
}
