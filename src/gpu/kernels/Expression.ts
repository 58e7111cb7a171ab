/**
 * A tiny expression language for elementwise ops: each op is described once, as an
 * `Expression` over its inputs `x` (and `y`), and emitted as WGSL, CUDA C or JavaScript
 * (seeds/001 "generateKernel": one description, one source per backend).
 *
 * All three targets evaluate in f32 on the device; the JavaScript target evaluates in f64 and
 * rounds once on store, which is why GPU results are compared with a tolerance.
 */

export type MathFunction = 'exp' | 'log' | 'sqrt' | 'tanh' | 'max' | 'pow';

export type Expression =
  | { readonly kind: 'input'; readonly index: 0 | 1 }
  | { readonly kind: 'constant'; readonly value: number }
  | {
      readonly kind: 'arithmetic';
      readonly operator: '+' | '-' | '*' | '/';
      readonly left: Expression;
      readonly right: Expression;
    }
  | { readonly kind: 'negate'; readonly operand: Expression }
  /** `whenPositive` where `condition > 0`, else `otherwise` (NaN is not positive). */
  | {
      readonly kind: 'select';
      readonly condition: Expression;
      readonly whenPositive: Expression;
      readonly otherwise: Expression;
    }
  | { readonly kind: 'call'; readonly function: MathFunction; readonly args: readonly Expression[] };

export const x: Expression = { kind: 'input', index: 0 };
export const y: Expression = { kind: 'input', index: 1 };

type Operand = Expression | number;

function lift(value: Operand): Expression {
  return typeof value === 'number' ? { kind: 'constant', value } : value;
}

function arithmetic(operator: '+' | '-' | '*' | '/', left: Operand, right: Operand): Expression {
  return { kind: 'arithmetic', operator, left: lift(left), right: lift(right) };
}

export const add = (left: Operand, right: Operand): Expression => arithmetic('+', left, right);
export const subtract = (left: Operand, right: Operand): Expression => arithmetic('-', left, right);
export const multiply = (left: Operand, right: Operand): Expression => arithmetic('*', left, right);
export const divide = (left: Operand, right: Operand): Expression => arithmetic('/', left, right);
export const negate = (operand: Operand): Expression => ({ kind: 'negate', operand: lift(operand) });
export const ifPositive = (condition: Operand, whenPositive: Operand, otherwise: Operand): Expression => ({
  kind: 'select',
  condition: lift(condition),
  whenPositive: lift(whenPositive),
  otherwise: lift(otherwise),
});
export const call = (name: MathFunction, ...args: Operand[]): Expression => ({
  kind: 'call',
  function: name,
  args: args.map(lift),
});

/**
 * tanh saturates to exactly 1 in f32 beyond |x| = 9; clamping to 15 keeps implementations that
 * compute it as a ratio of exponentials (inf / inf) from returning NaN, and changes no result.
 */
const TANH_CLAMP = 15;

/** The target-specific spelling of names and literals; the tree walk is shared. */
interface Syntax {
  readonly inputNames: readonly [string, string];
  literal(value: number): string;
  functionName(name: MathFunction): string;
  clamp(value: string, low: string, high: string): string;
  select(condition: string, whenPositive: string, otherwise: string): string;
}

function emit(expression: Expression, syntax: Syntax): string {
  switch (expression.kind) {
    case 'input':
      return syntax.inputNames[expression.index];
    case 'constant':
      return syntax.literal(expression.value);
    case 'arithmetic':
      return `(${emit(expression.left, syntax)} ${expression.operator} ${emit(expression.right, syntax)})`;
    case 'negate':
      return `(-${emit(expression.operand, syntax)})`;
    case 'select':
      return syntax.select(
        emit(expression.condition, syntax),
        emit(expression.whenPositive, syntax),
        emit(expression.otherwise, syntax),
      );
    case 'call': {
      const args = expression.args.map((argument) => emit(argument, syntax));
      if (expression.function === 'tanh') {
        const bound = syntax.literal(TANH_CLAMP);
        const low = syntax.literal(-TANH_CLAMP);
        return `${syntax.functionName('tanh')}(${syntax.clamp(args[0], low, bound)})`;
      }
      return `${syntax.functionName(expression.function)}(${args.join(', ')})`;
    }
  }
}

function decimalLiteral(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`kernel constants must be finite, got ${value}`);
  const text = String(Math.abs(value));
  const withPoint = /[.e]/.test(text) ? text : `${text}.0`;
  return value < 0 ? `(-${withPoint})` : withPoint;
}

const WGSL_SYNTAX: Syntax = {
  inputNames: ['x', 'y'],
  literal: decimalLiteral,
  functionName: (name) => name,
  clamp: (value, low, high) => `clamp(${value}, ${low}, ${high})`,
  select: (condition, whenPositive, otherwise) => `select(${otherwise}, ${whenPositive}, ${condition} > 0.0)`,
};

const CUDA_FUNCTIONS: Record<MathFunction, string> = {
  exp: 'expf',
  log: 'logf',
  sqrt: 'sqrtf',
  tanh: 'tanhf',
  max: 'fmaxf',
  pow: 'powf',
};

const CUDA_SYNTAX: Syntax = {
  inputNames: ['x', 'y'],
  literal: (value) => decimalLiteral(value).replace(/([0-9])(\)?)$/, '$1f$2'),
  functionName: (name) => CUDA_FUNCTIONS[name],
  clamp: (value, low, high) => `fminf(fmaxf(${value}, ${low}), ${high})`,
  select: (condition, whenPositive, otherwise) => `(${condition} > 0.0f ? ${whenPositive} : ${otherwise})`,
};

const JS_SYNTAX: Syntax = {
  inputNames: ['x', 'y'],
  literal: (value) => decimalLiteral(value),
  functionName: (name) => `Math.${name}`,
  clamp: (value, low, high) => `Math.min(Math.max(${value}, ${low}), ${high})`,
  select: (condition, whenPositive, otherwise) => `(${condition} > 0 ? ${whenPositive} : ${otherwise})`,
};

export function toWgsl(expression: Expression): string {
  return emit(expression, WGSL_SYNTAX);
}

/** WGSL on vec4<f32> values x and y: constants are splatted, since builtins take no mixed types. */
const WGSL_VECTOR_SYNTAX: Syntax = {
  ...WGSL_SYNTAX,
  literal: (value) => `vec4<f32>(${decimalLiteral(value)})`,
  select: (condition, whenPositive, otherwise) =>
    `select(${otherwise}, ${whenPositive}, ${condition} > vec4<f32>(0.0))`,
};

export function toWgslVector(expression: Expression): string {
  return emit(expression, WGSL_VECTOR_SYNTAX);
}

export function toCuda(expression: Expression): string {
  return emit(expression, CUDA_SYNTAX);
}

export function toJavaScript(expression: Expression): string {
  return emit(expression, JS_SYNTAX);
}

/** A JavaScript function of (x, y) for the cpu backend, compiled once per op. */
export function compileJavaScript(expression: Expression): (x: number, y: number) => number {
  return new Function('x', 'y', `return ${toJavaScript(expression)};`) as (x: number, y: number) => number;
}
