//! A small expression language for rules in the config (`when:` of a
//! dataset's priority rules): comparisons of variables with numbers,
//! strings and booleans, joined by `&&`, `||` and `!`, with parentheses.
//!
//! ```text
//! age_days <= 2
//! kind == "missing" && age_days < 30
//! !(dataset == "raw") || true
//! ```
//!
//! An expression is parsed and type-checked once, when the config loads,
//! against the variables the rule will see; evaluation cannot fail.

use std::fmt;

/// A value of a variable or a literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// The type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// A number.
    Num,
    /// A string.
    Str,
    /// A boolean.
    Bool,
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Num => "a number",
            Self::Str => "a string",
            Self::Bool => "a boolean",
        })
    }
}

impl Value {
    fn ty(&self) -> Type {
        match self {
            Self::Num(_) => Type::Num,
            Self::Str(_) => Type::Str,
            Self::Bool(_) => Type::Bool,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Var(usize),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(Cmp, Box<Node>, Box<Node>),
}

/// A parsed, type-checked boolean expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    node: Node,
    text: String,
}

/// Why an expression was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at character {at} of {text:?})")]
pub struct ExprError {
    /// What is wrong.
    pub message: String,
    /// Where, counted from 1.
    pub at: usize,
    /// The expression.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Str(String),
    Ident(String),
    Op(&'static str),
    LParen,
    RParen,
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, (String, usize)> {
    let b: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let at = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push((Tok::LParen, at));
            i += 1;
        } else if c == ')' {
            out.push((Tok::RParen, at));
            i += 1;
        } else if c == '"' || c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match b.get(i) {
                    None => return Err(("a string is not closed".into(), at)),
                    Some(&q) if q == c => break,
                    Some('\\') if b.get(i + 1).is_some() => {
                        s.push(b[i + 1]);
                        i += 2;
                        continue;
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            out.push((Tok::Str(s), at));
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(char::is_ascii_digit)) {
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == '.' || b[i] == '_') {
                i += 1;
            }
            let s: String = b[start..i].iter().filter(|c| **c != '_').collect();
            let v: f64 = s.parse().map_err(|_| (format!("{s:?} is not a number"), at))?;
            out.push((Tok::Num(v), at));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < b.len() && (b[i].is_alphanumeric() || b[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(b[start..i].iter().collect()), at));
        } else {
            let two: String = b[i..b.len().min(i + 2)].iter().collect();
            let op = ["&&", "||", "==", "!=", "<=", ">="].into_iter().find(|o| two == *o);
            match (op, c) {
                (Some(o), _) => {
                    out.push((Tok::Op(o), at));
                    i += 2;
                }
                (None, '<') => {
                    out.push((Tok::Op("<"), at));
                    i += 1;
                }
                (None, '>') => {
                    out.push((Tok::Op(">"), at));
                    i += 1;
                }
                (None, '!') => {
                    out.push((Tok::Op("!"), at));
                    i += 1;
                }
                (None, '=') => return Err(("a single `=`: compare with `==`".into(), at)),
                _ => return Err((format!("unexpected {c:?}"), at)),
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    vars: &'a [(&'a str, Type)],
    end: usize,
}

type PResult = Result<(Node, Type), (String, usize)>;

impl Parser<'_> {
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end, |t| t.1)
    }

    fn peek_op(&self, op: &str) -> bool {
        matches!(self.toks.get(self.pos), Some((Tok::Op(o), _)) if *o == op)
    }

    fn or(&mut self) -> PResult {
        let (mut left, mut ty) = self.and()?;
        while self.peek_op("||") {
            let at = self.at();
            self.pos += 1;
            let (right, rty) = self.and()?;
            if ty != Type::Bool || rty != Type::Bool {
                return Err(("`||` joins conditions, not values".into(), at));
            }
            left = Node::Or(Box::new(left), Box::new(right));
            ty = Type::Bool;
        }
        Ok((left, ty))
    }

    fn and(&mut self) -> PResult {
        let (mut left, ty) = self.not()?;
        while self.peek_op("&&") {
            let at = self.at();
            self.pos += 1;
            let (right, rty) = self.not()?;
            if ty != Type::Bool || rty != Type::Bool {
                return Err(("`&&` joins conditions, not values".into(), at));
            }
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok((left, ty))
    }

    fn not(&mut self) -> PResult {
        if self.peek_op("!") {
            let at = self.at();
            self.pos += 1;
            let (inner, ty) = self.not()?;
            if ty != Type::Bool {
                return Err(("`!` negates a condition, not a value".into(), at));
            }
            return Ok((Node::Not(Box::new(inner)), Type::Bool));
        }
        self.cmp()
    }

    fn cmp(&mut self) -> PResult {
        let (left, lty) = self.primary()?;
        let op = match self.toks.get(self.pos) {
            Some((Tok::Op("==" | "!=" | "<" | "<=" | ">" | ">="), _)) => match &self.toks[self.pos].0 {
                Tok::Op(o) => *o,
                _ => unreachable!("matched an operator"),
            },
            _ => return Ok((left, lty)),
        };
        let at = self.at();
        self.pos += 1;
        let (right, rty) = self.primary()?;
        if lty != rty {
            return Err((format!("`{op}` compares {lty} with {rty}"), at));
        }
        let cmp = match op {
            "==" => Cmp::Eq,
            "!=" => Cmp::Ne,
            "<" => Cmp::Lt,
            "<=" => Cmp::Le,
            ">" => Cmp::Gt,
            _ => Cmp::Ge,
        };
        if lty != Type::Num && !matches!(cmp, Cmp::Eq | Cmp::Ne) {
            return Err((format!("`{op}` orders numbers; {lty} can only be compared with == or !="), at));
        }
        Ok((Node::Cmp(cmp, Box::new(left), Box::new(right)), Type::Bool))
    }

    fn primary(&mut self) -> PResult {
        let at = self.at();
        let Some((tok, _)) = self.toks.get(self.pos).cloned() else {
            return Err(("the expression ends too early".into(), at));
        };
        self.pos += 1;
        match tok {
            Tok::Num(v) => Ok((Node::Lit(Value::Num(v)), Type::Num)),
            Tok::Str(s) => Ok((Node::Lit(Value::Str(s)), Type::Str)),
            Tok::Ident(id) if id == "true" || id == "false" => Ok((Node::Lit(Value::Bool(id == "true")), Type::Bool)),
            Tok::Ident(id) => match self.vars.iter().position(|(n, _)| *n == id) {
                Some(i) => Ok((Node::Var(i), self.vars[i].1)),
                None => {
                    let known: Vec<&str> = self.vars.iter().map(|(n, _)| *n).collect();
                    Err((format!("unknown variable `{id}` (known: {})", known.join(", ")), at))
                }
            },
            Tok::LParen => {
                let inner = self.or()?;
                if !matches!(self.toks.get(self.pos), Some((Tok::RParen, _))) {
                    return Err(("a `(` is not closed".into(), self.at()));
                }
                self.pos += 1;
                Ok(inner)
            }
            Tok::RParen => Err(("unexpected `)`".into(), at)),
            Tok::Op(o) => Err((format!("unexpected `{o}`"), at)),
        }
    }
}

impl Expr {
    /// Parses `text` as a condition over `vars` (name and type, in the
    /// order [`Expr::eval`] gets their values).
    ///
    /// # Errors
    /// Bad syntax, an unknown variable, or types that do not fit.
    pub fn parse(text: &str, vars: &[(&str, Type)]) -> Result<Self, ExprError> {
        let err = |(message, at): (String, usize)| ExprError { message, at, text: text.to_owned() };
        let toks = lex(text).map_err(err)?;
        let end = text.chars().count() + 1;
        let mut p = Parser { toks, pos: 0, vars, end };
        let (node, ty) = p.or().map_err(err)?;
        if p.pos < p.toks.len() {
            return Err(err(("unexpected text after the expression".into(), p.at())));
        }
        if ty != Type::Bool {
            return Err(err((format!("the expression is {ty}, not a condition"), 1)));
        }
        Ok(Self { node, text: text.to_owned() })
    }

    /// The expression as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates with the variables' values, in the order given to
    /// [`Expr::parse`]. A value of the wrong type compares as unequal.
    pub fn eval(&self, vars: &[Value]) -> bool {
        fn value<'a>(n: &'a Node, vars: &'a [Value]) -> Option<std::borrow::Cow<'a, Value>> {
            match n {
                Node::Lit(v) => Some(std::borrow::Cow::Borrowed(v)),
                Node::Var(i) => vars.get(*i).map(std::borrow::Cow::Borrowed),
                other => Some(std::borrow::Cow::Owned(Value::Bool(truth(other, vars)))),
            }
        }
        fn truth(n: &Node, vars: &[Value]) -> bool {
            match n {
                Node::Lit(Value::Bool(b)) => *b,
                Node::Lit(_) => false,
                Node::Var(i) => matches!(vars.get(*i), Some(Value::Bool(true))),
                Node::Not(x) => !truth(x, vars),
                Node::And(a, b) => truth(a, vars) && truth(b, vars),
                Node::Or(a, b) => truth(a, vars) || truth(b, vars),
                Node::Cmp(op, a, b) => {
                    let (Some(a), Some(b)) = (value(a, vars), value(b, vars)) else { return false };
                    if a.ty() != b.ty() {
                        return false;
                    }
                    let ord = match (&*a, &*b) {
                        (Value::Num(x), Value::Num(y)) => x.partial_cmp(y),
                        (Value::Str(x), Value::Str(y)) => Some(x.cmp(y)),
                        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
                        _ => None,
                    };
                    let Some(ord) = ord else { return false };
                    match op {
                        Cmp::Eq => ord.is_eq(),
                        Cmp::Ne => ord.is_ne(),
                        Cmp::Lt => ord.is_lt(),
                        Cmp::Le => ord.is_le(),
                        Cmp::Gt => ord.is_gt(),
                        Cmp::Ge => ord.is_ge(),
                    }
                }
            }
        }
        truth(&self.node, vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: [(&str, Type); 3] = [("age_days", Type::Num), ("kind", Type::Str), ("late", Type::Bool)];

    fn eval(text: &str, age: f64, kind: &str, late: bool) -> bool {
        Expr::parse(text, &VARS).unwrap().eval(&[Value::Num(age), Value::Str(kind.into()), Value::Bool(late)])
    }

    #[test]
    fn conditions_evaluate() {
        assert!(eval("age_days <= 2", 2.0, "missing", false));
        assert!(!eval("age_days <= 2", 2.5, "missing", false));
        assert!(eval("true", 0.0, "", false));
        assert!(eval("kind == \"missing\" && age_days < 30", 3.0, "missing", false));
        assert!(!eval("kind == 'missing' && age_days < 30", 3.0, "stale", false));
        assert!(eval("!(kind == 'stale') || late", 1.0, "stale", true));
        assert!(eval("late", 1.0, "x", true));
        assert!(eval("age_days >= 1_000", 1000.0, "x", false));
        // && binds tighter than ||.
        assert!(eval("true || false && false", 0.0, "", false));
    }

    #[test]
    fn bad_expressions_say_where_and_why() {
        let e = |t: &str| Expr::parse(t, &VARS).unwrap_err();
        assert!(e("ages <= 2").message.contains("unknown variable `ages`"));
        assert_eq!(e("ages <= 2").at, 1);
        assert!(e("age_days = 2").message.contains("=="));
        assert!(e("age_days <= 'x'").message.contains("compares a number with a string"));
        assert!(e("kind < 'x'").message.contains("orders numbers"));
        assert!(e("age_days").message.contains("not a condition"));
        assert!(e("(true").message.contains("not closed"));
        assert!(e("true true").message.contains("after the expression"));
        assert!(e("'open").message.contains("not closed"));
        assert!(e("").message.contains("ends too early"));
        assert!(e("age_days <= 2 &&").message.contains("ends too early"));
    }
}
