/**
 * useReducer whose current state is readable at once after a dispatch (through a ref), so a key
 * handler that runs before React re-renders still acts on the state the previous key produced.
 */
import {useCallback, useReducer, useRef, type RefObject} from 'react';

export function useSyncReducer<S, A>(reducer: (state: S, action: A) => S, init: () => S): [RefObject<S>, (action: A) => void] {
	const ref = useRef<S | null>(null);
	if (ref.current === null) {
		ref.current = init();
	}

	const [, rerender] = useReducer((count: number) => count + 1, 0);
	const dispatch = useCallback(
		(action: A) => {
			const next = reducer(ref.current as S, action);
			if (next !== ref.current) {
				ref.current = next;
				rerender();
			}
		},
		[reducer],
	);
	return [ref as RefObject<S>, dispatch];
}
