//! Neighbour search for the sparse (truncated-kernel) mode: a k-d tree over a point cloud with
//! branch-and-bound queries of the form
//! $$\{\,j:\ h_j-\kappa\lvert z-y_j\rvert^2\ \ge\ t\,\}$$
//! for a per-point offset $h$ (a potential) that changes from query batch to query batch.
//!
//! Each node keeps the bounding box of its points; with $H=\max_{j\in\text{node}}h_j$ and
//! $\delta^2=\mathrm{dist}^2(z,\text{box})$, every point of the node has
//! $h_j-\kappa\lvert z-y_j\rvert^2\le H-\kappa\delta^2$, so a node whose bound is below the
//! threshold is skipped whole (exact pruning: no kept pair is ever missed). This is the
//! hierarchical ("multiscale") candidate search of Schmitzer 2019, §4 (there on a
//! hierarchical partition of the grid; here on a k-d tree, which adapts to scattered points).
//! theory/sinkhorn.md §12.

/// Points per leaf.
const LEAF: usize = 8;

/// A balanced k-d tree (median splits along the widest side of the bounding box).
///
/// The points are stored *in tree order*: every node covers a contiguous range of positions.
/// [`KdTree::perm`] maps a tree position to the index in the input.
pub(crate) struct KdTree {
    d: usize,
    /// Row-major coordinates in tree order (`n × d`).
    pts: Vec<f64>,
    /// `perm[p]` = input index of the point at tree position `p`.
    perm: Vec<u32>,
    nodes: Vec<Node>,
    /// Bounding boxes, `2d` numbers per node: `lo[0..d]`, `hi[0..d]`.
    boxes: Vec<f64>,
}

#[derive(Clone, Copy)]
struct Node {
    start: u32,
    end: u32,
    /// Children (`u32::MAX` for a leaf).
    left: u32,
    right: u32,
}

const NONE: u32 = u32::MAX;

impl KdTree {
    /// Build over `n = pts.len() / d` row-major points (`n < 2^32`, checked by the caller).
    pub fn new(pts: &[f64], d: usize) -> KdTree {
        let n = pts.len() / d;
        let mut idx: Vec<u32> = (0..n as u32).collect();
        let mut nodes = Vec::with_capacity(2 * n.div_ceil(LEAF) + 1);
        let mut boxes = Vec::with_capacity((2 * n.div_ceil(LEAF) + 1) * 2 * d);
        build(pts, d, &mut idx, 0, n, &mut nodes, &mut boxes);
        let mut tree_pts = Vec::with_capacity(n * d);
        for &i in &idx {
            tree_pts.extend_from_slice(&pts[i as usize * d..(i as usize + 1) * d]);
        }
        KdTree {
            d,
            pts: tree_pts,
            perm: idx,
            nodes,
            boxes,
        }
    }

    /// Coordinates in tree order (row-major).
    pub fn points(&self) -> &[f64] {
        &self.pts
    }

    /// Tree position → input index.
    pub fn perm(&self) -> &[u32] {
        &self.perm
    }

    /// Per-node maxima of `h` (indexed by tree position); `out` has one entry per node.
    pub fn node_max(&self, h: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.nodes.len(), f64::NEG_INFINITY);
        // Children are created after their parent, so a reverse sweep sees them first.
        for k in (0..self.nodes.len()).rev() {
            let nd = self.nodes[k];
            out[k] = if nd.left == NONE {
                h[nd.start as usize..nd.end as usize]
                    .iter()
                    .fold(f64::NEG_INFINITY, |a, &b| a.max(b))
            } else {
                out[nd.left as usize].max(out[nd.right as usize])
            };
        }
    }

    #[inline]
    fn box_dist2(&self, k: usize, z: &[f64]) -> f64 {
        let b = &self.boxes[k * 2 * self.d..(k + 1) * 2 * self.d];
        let (lo, hi) = b.split_at(self.d);
        let mut s = 0.0;
        for ((&zk, &l), &h) in z.iter().zip(lo).zip(hi) {
            let t = if zk < l {
                l - zk
            } else if zk > h {
                zk - h
            } else {
                0.0
            };
            s += t * t;
        }
        s
    }

    #[inline]
    fn dist2(&self, p: usize, z: &[f64]) -> f64 {
        let q = &self.pts[p * self.d..(p + 1) * self.d];
        let mut s = 0.0;
        for (&a, &b) in z.iter().zip(q) {
            let t = a - b;
            s += t * t;
        }
        s
    }

    /// Visit every tree position `p` with $v_p=h_p-\kappa\lvert z-y_p\rvert^2\ge t$, where the
    /// threshold is `t = thresh(best)` and `best` is the largest $v_p$ seen so far (the
    /// threshold may only rise as `best` rises: `thresh` must be non-decreasing). Nodes are
    /// pruned against the current threshold; `visit(p, v)` may therefore see points that fall
    /// below the *final* threshold (the caller filters). `hmax` is [`KdTree::node_max`] of `h`.
    /// Returns the final `best` ($-\infty$ if every $h$ is $-\infty$).
    #[allow(clippy::too_many_arguments)]
    pub fn search(
        &self,
        z: &[f64],
        kappa: f64,
        h: &[f64],
        hmax: &[f64],
        thresh: impl Fn(f64) -> f64,
        stack: &mut Vec<u32>,
        mut visit: impl FnMut(usize, f64),
    ) -> f64 {
        let mut best = f64::NEG_INFINITY;
        let mut t = thresh(best);
        stack.clear();
        if self.nodes.is_empty() {
            return best;
        }
        stack.push(0);
        while let Some(k) = stack.pop() {
            let k = k as usize;
            let nd = self.nodes[k];
            if hmax[k] - kappa * self.box_dist2(k, z) < t {
                continue;
            }
            if nd.left == NONE {
                let range = nd.start as usize..nd.end as usize;
                for (p, &hp) in range.clone().zip(&h[range]) {
                    let v = hp - kappa * self.dist2(p, z);
                    // (a zero-weight atom has h = -inf: never visited)
                    if v >= t && v > f64::NEG_INFINITY {
                        if v > best {
                            best = v;
                            t = thresh(best);
                        }
                        visit(p, v);
                    }
                }
            } else {
                let (l, r) = (nd.left as usize, nd.right as usize);
                let bl = hmax[l] - kappa * self.box_dist2(l, z);
                let br = hmax[r] - kappa * self.box_dist2(r, z);
                // Depth first into the more promising child (pushed last).
                if bl >= br {
                    stack.push(r as u32);
                    stack.push(l as u32);
                } else {
                    stack.push(l as u32);
                    stack.push(r as u32);
                }
            }
        }
        best
    }
}

fn build(
    pts: &[f64],
    d: usize,
    idx: &mut [u32],
    start: usize,
    end: usize,
    nodes: &mut Vec<Node>,
    boxes: &mut Vec<f64>,
) -> u32 {
    let me = nodes.len();
    nodes.push(Node {
        start: start as u32,
        end: end as u32,
        left: NONE,
        right: NONE,
    });
    let mut lo = vec![f64::INFINITY; d];
    let mut hi = vec![f64::NEG_INFINITY; d];
    for &i in &idx[start..end] {
        let p = &pts[i as usize * d..(i as usize + 1) * d];
        for k in 0..d {
            lo[k] = lo[k].min(p[k]);
            hi[k] = hi[k].max(p[k]);
        }
    }
    boxes.extend_from_slice(&lo);
    boxes.extend_from_slice(&hi);
    if end - start > LEAF {
        let axis = (0..d)
            .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
            .unwrap_or(0);
        let mid = start + (end - start) / 2;
        idx[start..end].select_nth_unstable_by(mid - start, |&a, &b| {
            pts[a as usize * d + axis].total_cmp(&pts[b as usize * d + axis])
        });
        let l = build(pts, d, idx, start, mid, nodes, boxes);
        let r = build(pts, d, idx, mid, end, nodes, boxes);
        nodes[me].left = l;
        nodes[me].right = r;
    }
    me as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The pruned search returns exactly the brute-force set, for a fixed threshold.
    #[test]
    fn search_equals_brute_force() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for d in [1usize, 2, 3] {
            let n = 500;
            let pts: Vec<f64> = (0..n * d)
                .map(|_| rng.random::<f64>() * 4.0 - 2.0)
                .collect();
            let tree = KdTree::new(&pts, d);
            let h: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            let mut hmax = Vec::new();
            tree.node_max(&h, &mut hmax);
            let mut stack = Vec::new();
            for q in 0..20 {
                let z: Vec<f64> = (0..d).map(|_| rng.random::<f64>() * 4.0 - 2.0).collect();
                let t = -0.3 * q as f64 / 10.0;
                let mut got = Vec::new();
                tree.search(&z, 1.0, &h, &hmax, |_| t, &mut stack, |p, _| got.push(p));
                got.sort_unstable();
                let want: Vec<usize> = (0..n).filter(|&p| h[p] - tree.dist2(p, &z) >= t).collect();
                assert_eq!(got, want);
            }
        }
    }
}
