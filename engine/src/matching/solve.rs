//! The batch solver: a min-cost assignment of requests (rows) to resources with capacities
//! (columns: a slot's open seats, a ward's admissible beds), by successive shortest
//! augmenting paths — the Hungarian method on a sparse graph, in integers.
//!
//! Each row adds one unit of flow: a Dijkstra search from the new row over the residual graph
//! with reduced costs (node potentials keep every reduced cost non-negative) finds the
//! cheapest way to place it, possibly moving earlier rows to other columns. Every row also
//! has a private "unplaced" edge of cost `UNPLACED_COST`, so a search always ends. The
//! search stops as soon as the sink is settled; potentials of settled nodes are then moved
//! by `dist - D`, which keeps them feasible (min(dist, D) is itself a feasible potential).
//! Rows are added in batch order and ties break on node index, so the result is the same on
//! every replica. Work is bounded by `SOLVE_RELAXATIONS_MAX` edge relaxations per batch;
//! rows not placed within it are left to the caller (which places them greedily).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Edge relaxations one batch may spend (about 50 ms of work); rows beyond it are unsolved.
pub const SOLVE_RELAXATIONS_MAX: u64 = 4_000_000;
/// Costs are clamped to this, so path sums stay far inside `i64`.
pub const COST_CAP: u64 = 1 << 40;
/// The cost of leaving a row unplaced: above any real cost, so the solver places whenever
/// it can.
pub const UNPLACED_COST: u64 = 1 << 42;

/// An assignment problem. `rows[r]` lists `(column, cost)`; `capacity[c]` is how many rows
/// column `c` takes.
#[derive(Clone, Debug, Default)]
pub struct Problem {
    pub rows: Vec<Vec<(usize, u64)>>,
    pub capacity: Vec<u32>,
}

/// Where the solver put a row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement {
    Column(usize),
    /// Every candidate of the row is better used by other rows (or the row has none).
    Unplaced,
    /// The work bound ran out before the row was solved.
    Unsolved,
}

struct State<'p> {
    p: &'p Problem,
    /// Node potentials: rows, then columns, then the sink.
    pi: Vec<i64>,
    placed: Vec<Placement>,
    members: Vec<Vec<usize>>,
    dist: Vec<i64>,
    prev: Vec<usize>,
    touched: Vec<usize>,
    budget: u64,
}

/// Solves `p`: one placement per row.
pub fn solve(p: &Problem) -> Vec<Placement> {
    let (r, c) = (p.rows.len(), p.capacity.len());
    let n = r + c + 1;
    let mut s = State {
        p,
        pi: vec![0; n],
        placed: vec![Placement::Unsolved; r],
        members: vec![Vec::new(); c],
        dist: vec![i64::MAX; n],
        prev: vec![usize::MAX; n],
        touched: Vec::new(),
        budget: SOLVE_RELAXATIONS_MAX,
    };
    for row in 0..r {
        if !s.augment(row) {
            break;
        }
    }
    s.placed
}

fn cost(c: u64) -> i64 {
    c.min(COST_CAP) as i64
}

impl State<'_> {
    fn sink(&self) -> usize {
        self.p.rows.len() + self.p.capacity.len()
    }

    fn col_node(&self, c: usize) -> usize {
        self.p.rows.len() + c
    }

    /// Residual edges out of `x` as (target, cost).
    fn edges(&self, x: usize, out: &mut Vec<(usize, i64)>) {
        out.clear();
        let r = self.p.rows.len();
        if x < r {
            for &(c, w) in &self.p.rows[x] {
                if c < self.p.capacity.len() && self.placed[x] != Placement::Column(c) {
                    out.push((self.col_node(c), cost(w)));
                }
            }
            if self.placed[x] != Placement::Unplaced {
                out.push((self.sink(), UNPLACED_COST as i64));
            }
        } else if x < self.sink() {
            let c = x - r;
            if (self.members[c].len() as u64) < u64::from(self.p.capacity[c]) {
                out.push((self.sink(), 0));
            }
            for &m in &self.members[c] {
                let w = self.p.rows[m].iter().find(|e| e.0 == c).map_or(0, |e| e.1);
                out.push((m, -cost(w)));
            }
        }
    }

    /// Places `row`; false when the work bound ran out (the row stays unsolved).
    fn augment(&mut self, row: usize) -> bool {
        for &t in &self.touched {
            self.dist[t] = i64::MAX;
            self.prev[t] = usize::MAX;
        }
        self.touched.clear();
        let sink = self.sink();
        let mut settled = Vec::new();
        let mut heap = BinaryHeap::new();
        let mut edges = Vec::new();
        self.dist[row] = 0;
        self.touched.push(row);
        heap.push(Reverse((0i64, row)));
        while let Some(Reverse((d, x))) = heap.pop() {
            if d > self.dist[x] {
                continue;
            }
            settled.push(x);
            if x == sink {
                break;
            }
            self.edges(x, &mut edges);
            for &(y, w) in &edges {
                if self.budget == 0 {
                    return false;
                }
                self.budget -= 1;
                let nd = d + w + self.pi[x] - self.pi[y];
                if nd < self.dist[y] {
                    if self.dist[y] == i64::MAX {
                        self.touched.push(y);
                    }
                    self.dist[y] = nd;
                    self.prev[y] = x;
                    heap.push(Reverse((nd, y)));
                }
            }
        }
        let total = self.dist[sink];
        for &v in &settled {
            self.pi[v] += self.dist[v] - total;
        }
        self.flip_path(row);
        true
    }

    /// Applies the augmenting path that ends at the sink.
    fn flip_path(&mut self, row: usize) {
        let r = self.p.rows.len();
        let mut path = vec![self.sink()];
        while let Some(&last) = path.last() {
            if last == row {
                break;
            }
            path.push(self.prev[last]);
        }
        path.reverse();
        for pair in path.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if a < r && b == self.sink() {
                self.placed[a] = Placement::Unplaced;
            } else if a < r {
                self.placed[a] = Placement::Column(b - r);
                self.members[b - r].push(a);
            } else if b < r {
                self.members[a - r].retain(|&m| m != b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(p: &Problem) -> u64 {
        // Exhaustive over every row's choice (columns or unplaced) for small problems.
        fn go(p: &Problem, row: usize, used: &mut Vec<u32>) -> u64 {
            if row == p.rows.len() {
                return 0;
            }
            let mut best = UNPLACED_COST + go(p, row + 1, used);
            for &(c, w) in &p.rows[row] {
                if used[c] < p.capacity[c] {
                    used[c] += 1;
                    best = best.min(w + go(p, row + 1, used));
                    used[c] -= 1;
                }
            }
            best
        }
        go(p, 0, &mut vec![0; p.capacity.len()])
    }

    fn total(p: &Problem, placed: &[Placement]) -> u64 {
        placed
            .iter()
            .enumerate()
            .map(|(r, pl)| match pl {
                Placement::Column(c) => p.rows[r].iter().find(|e| e.0 == *c).unwrap().1,
                _ => UNPLACED_COST,
            })
            .sum()
    }

    #[test]
    fn beats_greedy_on_the_classic_trap() {
        // Greedy gives row 0 column 0 (cost 1); row 1 then pays 100. Optimal: 2 + 3.
        let p = Problem {
            rows: vec![vec![(0, 1), (1, 2)], vec![(0, 3), (1, 100)]],
            capacity: vec![1, 1],
        };
        let placed = solve(&p);
        assert_eq!(placed, vec![Placement::Column(1), Placement::Column(0)]);
    }

    #[test]
    fn matches_brute_force_on_small_random_problems() {
        let mut rng = crate::generate::SplitMix64::new(7);
        for _ in 0..300 {
            let cols = 1 + rng.below(4) as usize;
            let rows = 1 + rng.below(5) as usize;
            let p = Problem {
                rows: (0..rows)
                    .map(|_| {
                        let mut e = Vec::new();
                        for c in 0..cols {
                            if rng.chance(60) {
                                e.push((c, rng.below(50)));
                            }
                        }
                        e
                    })
                    .collect(),
                capacity: (0..cols).map(|_| rng.below(3) as u32).collect(),
            };
            let placed = solve(&p);
            assert_eq!(total(&p, &placed), brute(&p), "{p:?} {placed:?}");
            for c in 0..cols {
                let n = placed
                    .iter()
                    .filter(|x| **x == Placement::Column(c))
                    .count();
                assert!(n as u32 <= p.capacity[c]);
            }
        }
    }
}
