//! Rewrites a template so that every operator that can build a large value calls a bounded function.
//!
//! minijinja's `*`, `+`, `~` and slices are built into its VM: no filter or callback sees them, and the
//! compiler folds constant operands at compile time (`{{ "x" * 100000000 }}` allocates 100 MB while merely
//! compiling). So the source is parsed, each such expression is replaced by a call to a global function of
//! the sandbox (`a * b` becomes `__herald_mul(a, b)`), and the result is compiled instead. What the walk
//! misses is caught after compiling, by [`unbounded_instruction`], so a gap fails closed.

use minijinja::machinery::ast::{BinOpKind, CallArg, Expr, Stmt};
use minijinja::machinery::{Instruction, Span};
use minijinja::syntax::SyntaxConfig;
use minijinja::{Error, ErrorKind};

pub(super) const MUL: &str = "__herald_mul";
pub(super) const ADD: &str = "__herald_add";
pub(super) const CONCAT: &str = "__herald_concat";
pub(super) const SLICE: &str = "__herald_slice";

/// The source with every bounded operator replaced by its function, or why it cannot be parsed.
pub(super) fn bounded_source(source: &str, name: &str) -> Result<String, Error> {
    let ast = minijinja::machinery::parse(source, name, SyntaxConfig::default())?;
    let rewriter = Rewriter { source };
    let mut edits = Vec::new();
    rewriter.stmt(&ast, &mut edits);
    rewriter.apply(0, source.len(), edits)
}

/// An instruction left in a compiled template that the sandbox cannot bound, described for the author.
pub(super) fn unbounded_instruction(template: &minijinja::Template<'_, '_>) -> Option<&'static str> {
    let instructions = &minijinja::machinery::get_compiled_template(template).instructions;
    (0..)
        .map_while(|index| instructions.get(index))
        .find_map(|instruction| match instruction {
            Instruction::Mul | Instruction::Add | Instruction::StringConcat | Instruction::Slice => {
                Some("an operator Herald could not bound")
            }
            // Captured output is buffered in memory, beyond the capped writer's reach.
            Instruction::BeginCapture(_) => {
                Some("{% set %}…{% endset %} and {% filter %} blocks are not supported")
            }
            _ => None,
        })
}

/// A replacement of `source[start..end]`.
struct Edit {
    start: usize,
    end: usize,
    text: String,
}

struct Rewriter<'s> {
    source: &'s str,
}

/// Where `expr`'s text starts and ends. The parser's span of a chained postfix (`a.b[1:]`) starts at its
/// last `.` or `[`, so the span is widened to every operand's.
fn extent(expr: &Expr<'_>) -> (usize, usize) {
    let span: Span = expr.span();
    children(expr).into_iter().map(extent).fold(
        (span.start_offset as usize, span.end_offset as usize),
        |(start, end), (child_start, child_end)| (start.min(child_start), end.max(child_end)),
    )
}

/// The expressions directly inside `expr`.
fn children<'e, 'a>(expr: &'e Expr<'a>) -> Vec<&'e Expr<'a>> {
    let args = |args: &'e [CallArg<'a>]| {
        args.iter().map(|arg| match arg {
            CallArg::Pos(expr)
            | CallArg::Kwarg(_, expr)
            | CallArg::PosSplat(expr)
            | CallArg::KwargSplat(expr) => expr,
        })
    };
    match expr {
        Expr::Var(_) | Expr::Const(_) => Vec::new(),
        Expr::Slice(slice) => std::iter::once(&slice.expr)
            .chain(slice.start.as_ref())
            .chain(slice.stop.as_ref())
            .chain(slice.step.as_ref())
            .collect(),
        Expr::UnaryOp(op) => vec![&op.expr],
        Expr::BinOp(op) => vec![&op.left, &op.right],
        Expr::Compare(compare) => std::iter::once(&compare.expr)
            .chain(compare.ops.iter().map(|op| &op.expr))
            .collect(),
        Expr::IfExpr(if_expr) => [&if_expr.test_expr, &if_expr.true_expr]
            .into_iter()
            .chain(if_expr.false_expr.as_ref())
            .collect(),
        Expr::Filter(filter) => filter.expr.iter().chain(args(&filter.args)).collect(),
        Expr::Test(test) => std::iter::once(&test.expr).chain(args(&test.args)).collect(),
        Expr::GetAttr(get) => vec![&get.expr],
        Expr::GetItem(get) => vec![&get.expr, &get.subscript_expr],
        Expr::Call(call) => std::iter::once(&call.expr).chain(args(&call.args)).collect(),
        Expr::List(list) => list.items.iter().collect(),
        Expr::Tuple(tuple) => tuple.items.iter().collect(),
        Expr::Map(map) => map.keys.iter().chain(&map.values).collect(),
    }
}

impl Rewriter<'_> {
    fn stmts(&self, stmts: &[Stmt<'_>], edits: &mut Vec<Edit>) {
        for stmt in stmts {
            self.stmt(stmt, edits);
        }
    }

    fn stmt(&self, stmt: &Stmt<'_>, edits: &mut Vec<Edit>) {
        match stmt {
            Stmt::Template(template) => self.stmts(&template.children, edits),
            Stmt::EmitExpr(emit) => self.expr(&emit.expr, edits),
            Stmt::ForLoop(for_loop) => {
                self.expr(&for_loop.iter, edits);
                if let Some(filter) = &for_loop.filter_expr {
                    self.expr(filter, edits);
                }
                self.stmts(&for_loop.body, edits);
                self.stmts(&for_loop.else_body, edits);
            }
            Stmt::IfCond(cond) => {
                self.expr(&cond.expr, edits);
                self.stmts(&cond.true_body, edits);
                self.stmts(&cond.false_body, edits);
            }
            Stmt::WithBlock(with) => {
                for (_, value) in &with.assignments {
                    self.expr(value, edits);
                }
                self.stmts(&with.body, edits);
            }
            Stmt::Set(set) => self.expr(&set.expr, edits),
            Stmt::AutoEscape(block) => {
                self.expr(&block.enabled, edits);
                self.stmts(&block.body, edits);
            }
            // Set and filter blocks are refused after compiling (they capture output): no rewrite needed.
            Stmt::EmitRaw(_) | Stmt::SetBlock(_) | Stmt::FilterBlock(_) => {}
            Stmt::Do(call) => {
                self.expr(&call.call.expr, edits);
                self.args(&call.call.args, edits);
            }
        }
    }

    fn args(&self, args: &[CallArg<'_>], edits: &mut Vec<Edit>) {
        for arg in args {
            let (CallArg::Pos(expr)
            | CallArg::Kwarg(_, expr)
            | CallArg::PosSplat(expr)
            | CallArg::KwargSplat(expr)) = arg;
            self.expr(expr, edits);
        }
    }

    /// Adds an edit for every outermost bounded operator inside `expr`.
    fn expr(&self, expr: &Expr<'_>, edits: &mut Vec<Edit>) {
        if let Some(text) = self.bounded_call(expr) {
            let (start, end) = extent(expr);
            edits.push(Edit { start, end, text });
            return;
        }
        for child in children(expr) {
            self.expr(child, edits);
        }
    }

    /// The call replacing `expr`, when it is a bounded operator.
    fn bounded_call(&self, expr: &Expr<'_>) -> Option<String> {
        let (function, operands): (&str, Vec<Option<&Expr<'_>>>) = match expr {
            Expr::BinOp(op) => {
                let function = match op.op {
                    BinOpKind::Mul => MUL,
                    BinOpKind::Add => ADD,
                    BinOpKind::Concat => CONCAT,
                    _ => return None,
                };
                (function, vec![Some(&op.left), Some(&op.right)])
            }
            Expr::Slice(slice) => (
                SLICE,
                vec![
                    Some(&slice.expr),
                    slice.start.as_ref(),
                    slice.stop.as_ref(),
                    slice.step.as_ref(),
                ],
            ),
            _ => return None,
        };
        let operands = operands
            .into_iter()
            .map(|operand| match operand {
                None => "none".to_owned(),
                Some(operand) => self.rewritten(operand),
            })
            .collect::<Vec<_>>();
        Some(format!("{function}({})", operands.join(", ")))
    }

    /// The text of `expr` with its bounded operators replaced. A span the parser reported oddly yields
    /// text that no longer parses, or keeps an operator the compiled check then refuses: never a gap.
    fn rewritten(&self, expr: &Expr<'_>) -> String {
        if let Some(text) = self.bounded_call(expr) {
            return text;
        }
        let (start, end) = extent(expr);
        let mut edits = Vec::new();
        for child in children(expr) {
            self.expr(child, &mut edits);
        }
        self.apply(start, end, edits)
            .unwrap_or_else(|_| self.source.get(start..end).unwrap_or_default().to_owned())
    }

    fn apply(&self, start: usize, end: usize, mut edits: Vec<Edit>) -> Result<String, Error> {
        edits.sort_by_key(|edit| edit.start);
        let mut text = String::with_capacity(end.saturating_sub(start));
        let mut at = start;
        for edit in edits {
            let kept = self
                .source
                .get(at..edit.start)
                .filter(|_| edit.end <= end)
                .ok_or_else(|| Error::new(ErrorKind::SyntaxError, "the template could not be bounded"))?;
            text.push_str(kept);
            text.push_str(&edit.text);
            at = edit.end;
        }
        text.push_str(self.source.get(at..end).unwrap_or_default());
        Ok(text)
    }
}
