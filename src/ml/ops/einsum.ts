/**
 * einsum for the contractions models use, each mapped onto matmul, transpose, sum and mul (so its
 * gradient is theirs). Index letters may be any: a spec is matched after renaming its letters in
 * order of appearance ('bij,bjk->bik' and 'nab,nbc->nac' are one form). Supported forms:
 *   'ij,jk->ik'  matrix product          'bij,bjk->bik'       batched matrix product
 *   'ij,kj->ik'  a @ b^T                 'bhqd,bhkd->bhqk'    attention scores q @ k^T
 *   'i,i->'      dot product             'i,j->ij'            outer product
 *   'ij->ji'     transpose               'ij->'  'ij->i'  'ij->j'   sums
 * Any other spec is refused with an error listing these.
 */
import { check, TensorError } from '../errors.js';
import type { Tensor } from '../Tensor.js';
import { mul } from './elementwise.js';
import { dot, matmul } from './matmul.js';
import { sum } from './reduce.js';
import { reshape, transpose } from './shape.js';

type Form = (operands: readonly Tensor[]) => Tensor;

const FORMS: Record<string, { readonly written: string; readonly arity: number; readonly apply: Form }> = {
  'ab,bc->ac': { written: 'ij,jk->ik', arity: 2, apply: ([a, b]) => matmul(a, b) },
  'abc,acd->abd': { written: 'bij,bjk->bik', arity: 2, apply: ([a, b]) => matmul(a, b) },
  'ab,cb->ac': { written: 'ij,kj->ik', arity: 2, apply: ([a, b]) => matmul(a, transpose(b)) },
  'abcd,abed->abce': { written: 'bhqd,bhkd->bhqk', arity: 2, apply: ([q, k]) => matmul(q, transpose(k)) },
  'a,a->': { written: 'i,i->', arity: 2, apply: ([a, b]) => dot(a, b) },
  'a,b->ab': {
    written: 'i,j->ij',
    arity: 2,
    apply: ([a, b]) => mul(reshape(a, [a.shape[0], 1]), reshape(b, [1, b.shape[0]])),
  },
  'ab->ba': { written: 'ij->ji', arity: 1, apply: ([a]) => transpose(a) },
  'ab->': { written: 'ij->', arity: 1, apply: ([a]) => sum(a) },
  'ab->a': { written: 'ij->i', arity: 1, apply: ([a]) => sum(a, 1) },
  'ab->b': { written: 'ij->j', arity: 1, apply: ([a]) => sum(a, 0) },
};

/** The spec with its letters renamed a, b, c... in order of first appearance. */
function canonical(spec: string): string {
  const names = new Map<string, string>();
  let out = '';
  for (const character of spec.replace(/\s+/g, '')) {
    if (/[a-zA-Z]/.test(character)) {
      if (!names.has(character)) names.set(character, String.fromCharCode(97 + names.size));
      out += names.get(character);
    } else out += character;
  }
  return out;
}

/** Einstein summation over `operands` for the forms listed above (shapes checked by the ops). */
export function einsum(spec: string, ...operands: Tensor[]): Tensor {
  const form = FORMS[canonical(spec)];
  if (form === undefined) {
    const supported = Object.values(FORMS)
      .map((f) => `'${f.written}'`)
      .join(', ');
    throw new TensorError(
      'invalid_argument',
      `einsum: '${spec}' is not a supported form; supported (letters may be renamed): ${supported}; write other contractions with matmul, permute and sum`,
    );
  }
  check(operands.length === form.arity, 'invalid_argument', () => {
    return `einsum: '${spec}' takes ${form.arity} operand(s), got ${operands.length}`;
  });
  const letters = spec.replace(/\s+/g, '').split('->')[0].split(',');
  operands.forEach((operand, i) => {
    check(operand.rank === letters[i].length, 'shape_mismatch', () => {
      return `einsum: operand ${i} of '${spec}' needs rank ${letters[i].length}, got [${operand.shape.join(', ')}]`;
    });
  });
  return form.apply(operands);
}
