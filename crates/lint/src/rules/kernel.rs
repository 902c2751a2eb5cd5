//! Rules over the kernel sources given to `mx.fast.metal_kernel` and `mx.fast.cuda_kernel`:
//! the source is read as C (comments blanked, blocks by braces), not compiled.

use crate::registry::Rule;

/// A finding in a kernel source: the rule, the byte offset in the text given, the message.
pub type KernelHit = (Rule, usize, String);

const BARRIERS: &[&str] = &["threadgroup_barrier", "__syncthreads", "simdgroup_barrier", "__syncwarp"];
const SIMD_REDUCES: &[&str] =
    &["simd_sum", "simd_max", "simd_min", "simd_prod", "simd_shuffle", "quad_", "__shfl", "cg::reduce", "__reduce_"];
const VECTORS: &[&str] = &[
    "float4",
    "float2",
    "half4",
    "half2",
    "half8",
    "bfloat4",
    "bfloat2",
    "vec<",
    "uint4",
    "uint2",
    "int4",
    "packed_",
    "__half2",
    "__nv_bfloat162",
    "longlong2",
];
const HALF_TYPES: &[&str] = &["half", "bfloat", "bfloat16_t", "__half", "__nv_bfloat16", "float16_t"];
const THREAD_IDS: &[&str] = &[
    "thread_position_in_grid",
    "thread_position_in_threadgroup",
    "thread_index_in_threadgroup",
    "thread_index_in_simdgroup",
    "simdgroup_index_in_threadgroup",
    "threads_per_threadgroup",
    "threadIdx",
    "blockIdx",
];

/// A `{ ... }` block: the text before it (`for (...)`, `if (...)`) and where it starts and ends.
struct Block {
    header: String,
    at: usize,
    start: usize,
    end: usize,
}

/// The source with comments blanked (offsets kept).
fn uncomment(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i + 1 < b.len() {
        let close = match (b[i], b[i + 1]) {
            (b'/', b'/') => b[i..].iter().position(|&c| c == b'\n').map(|p| i + p).unwrap_or(b.len()),
            (b'/', b'*') => b[i + 2..].windows(2).position(|w| w == b"*/").map(|p| i + p + 4).unwrap_or(b.len()),
            _ => {
                i += 1;
                continue;
            }
        };
        for c in &mut out[i..close] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        i = close;
    }
    String::from_utf8(out).unwrap_or_else(|_| src.to_string())
}

fn blocks(src: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut open: Vec<(String, usize, usize)> = Vec::new();
    let mut stmt_start = 0;
    let mut parens = 0i32;
    for (i, c) in src.char_indices() {
        match c {
            '(' => parens += 1,
            ')' => parens -= 1,
            '{' => {
                let header = src[stmt_start..i].trim();
                let at = stmt_start + src[stmt_start..i].find(header).unwrap_or(0);
                open.push((header.to_string(), at, i + 1));
                stmt_start = i + 1;
            }
            '}' => {
                if let Some((header, at, start)) = open.pop() {
                    out.push(Block { header, at, start, end: i });
                }
                stmt_start = i + 1;
            }
            ';' if parens <= 0 => stmt_start = i + 1,
            _ => {}
        }
    }
    out
}

fn is_word_at(src: &str, at: usize, word: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let before = src[..at].chars().next_back().is_none_or(|c| !ident(c));
    let after = src[at + word.len()..].chars().next().is_none_or(|c| !ident(c));
    before && after
}

/// Offsets of `word` as a whole identifier.
fn words<'a>(src: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    src.match_indices(word).map(|(i, _)| i).filter(move |&i| is_word_at(src, i, word))
}

fn has_any(src: &str, names: &[&str]) -> bool {
    names.iter().any(|n| src.contains(n))
}

fn is_loop(b: &Block) -> bool {
    b.header.starts_with("for") || b.header.starts_with("while")
}

/// Every finding in one kernel source.
pub fn check(src: &str) -> Vec<KernelHit> {
    let text = uncomment(src);
    let blocks = blocks(&text);
    let mut out = Vec::new();
    if let Some(at) = words(&text, "double").next() {
        out.push((
            Rule::KernelDouble,
            at,
            "double in a kernel: float (Metal has none; CUDA runs it far slower)".to_string(),
        ));
    }
    half_accumulators(&text, &blocks, &mut out);
    tree_reduce(&text, &blocks, &mut out);
    scalar_loads(&text, &blocks, &mut out);
    divergent_barriers(&text, &blocks, &mut out);
    out.sort_by_key(|h| h.1);
    out
}

fn half_accumulators(text: &str, blocks: &[Block], out: &mut Vec<KernelHit>) {
    for ty in HALF_TYPES {
        for at in words(text, ty) {
            let rest = text[at + ty.len()..].trim_start();
            let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if name.is_empty() {
                continue;
            }
            let summed = words(text, &name).any(|u| {
                let after = text[u + name.len()..].trim_start();
                let inside_loop = blocks.iter().any(|b| is_loop(b) && b.start <= u && u < b.end);
                inside_loop && (after.starts_with("+=") || after.starts_with("-="))
            });
            if summed {
                let msg = format!("`{name}` sums in {ty}: accumulate in float, convert once at the end");
                out.push((Rule::KernelHalfAccumulator, at, msg));
            }
        }
    }
}

fn halves(header: &str) -> bool {
    let h: String = header.chars().filter(|c| !c.is_whitespace()).collect();
    h.contains(">>=1") || h.contains("/=2") || h.contains(">>1)") || h.contains("/2)")
}

fn tree_reduce(text: &str, blocks: &[Block], out: &mut Vec<KernelHit>) {
    if has_any(text, SIMD_REDUCES) {
        return;
    }
    for b in blocks {
        let body = &text[b.start..b.end];
        if b.header.starts_with("for") && halves(&b.header) && has_any(body, BARRIERS) {
            let msg = "tree reduction through threadgroup memory, a barrier per step: simd_sum / __shfl_xor_sync \
                       within a SIMD group first";
            out.push((Rule::KernelTreeReduce, b.at, msg.to_string()));
        }
    }
}

fn scalar_loads(text: &str, blocks: &[Block], out: &mut Vec<KernelHit>) {
    if has_any(text, VECTORS) {
        return;
    }
    for b in blocks {
        let h: String = b.header.chars().filter(|c| !c.is_whitespace()).collect();
        let strided = h.starts_with("for(") && h.contains("+=") && !h.contains("+=1)");
        let body = &text[b.start..b.end];
        if strided && indexes_by(body, loop_variable(&b.header)) && !has_any(body, BARRIERS) {
            let msg = "strided loop of one-element loads: load 4 or 8 elements at a time (float4, half4, vec<T, 4>)";
            out.push((Rule::KernelScalarLoads, b.at, msg.to_string()));
        }
    }
}

/// The variable a `for (int i = ...; ...)` header declares.
fn loop_variable(header: &str) -> Option<&str> {
    let init = header.split_once('(')?.1.split(['=', ';']).next()?;
    init.split_whitespace().last()
}

/// Whether the body reads an array at an index that uses the loop variable (`inp[row * n + i]`).
fn indexes_by(body: &str, var: Option<&str>) -> bool {
    let Some(var) = var else { return false };
    body.split('[').skip(1).any(|after| after.split(']').next().is_some_and(|idx| words(idx, var).next().is_some()))
}

/// Names that hold a thread index: the built-in ones and variables set from them.
fn thread_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = THREAD_IDS.iter().map(|s| s.to_string()).collect();
    for stmt in text.split([';', '{', '}']) {
        let Some((lhs, rhs)) = stmt.split_once('=') else { continue };
        if lhs.ends_with(['<', '>', '!', '+', '-', '*', '/']) || rhs.starts_with('=') {
            continue;
        }
        if names.iter().any(|n| words(rhs, n).next().is_some()) {
            if let Some(name) = lhs.split_whitespace().last() {
                names.push(name.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_').to_string());
            }
        }
    }
    names.retain(|n| !n.is_empty());
    names
}

fn divergent_barriers(text: &str, blocks: &[Block], out: &mut Vec<KernelHit>) {
    let names = thread_names(text);
    let on_thread = |cond: &str| names.iter().any(|n| words(cond, n).next().is_some());
    for barrier in BARRIERS {
        for at in words(text, barrier) {
            let branch = blocks.iter().find(|b| {
                b.start <= at && at < b.end && (b.header.starts_with("if") || b.header.starts_with("else if"))
            });
            if branch.is_some_and(|b| on_thread(&b.header)) {
                let msg = format!("{barrier} inside a branch on the thread index: not every thread reaches it");
                out.push((Rule::KernelDivergentBarrier, at, msg));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(src: &str) -> Vec<Rule> {
        check(src).into_iter().map(|h| h.0).collect()
    }

    #[test]
    fn a_barrier_in_a_branch_on_a_variable_set_from_the_thread_index_is_found() {
        let lid = "uint lid = thread_position_in_threadgroup.x;\n";
        let src = format!("{lid}if (lid < 16) {{ threadgroup_barrier(mem_flags::mem_threadgroup); }}");
        assert_eq!(rules(&src), vec![Rule::KernelDivergentBarrier]);
        let fine = format!("{lid}if (n > 16) {{ threadgroup_barrier(mem_flags::mem_threadgroup); }}");
        assert!(rules(&fine).is_empty());
    }

    #[test]
    fn comments_do_not_count() {
        assert!(rules("// double the value\nfloat y = 2 * x; /* double */").is_empty());
        assert_eq!(rules("double y = x;"), vec![Rule::KernelDouble]);
    }
}
