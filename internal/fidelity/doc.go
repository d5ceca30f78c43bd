// Package fidelity is the long-context fidelity suite: does pruning keep
// the answers? It builds test prompts to an exact token budget with the
// model's tokenizer, scores greedy answers, and does the statistics.
//
//   - Synthetic retrieval tasks in the style of RULER (Hsieh et al. 2024,
//     arXiv 2404.06654) with templates and wording of our own: single
//     needles (number, word, UUID-like code), multi-key, multi-value,
//     multi-query, variable tracking and common-words extraction, over a
//     haystack of essays or WikiText.
//   - Document QA over the development splits of SQuAD v2.0 and HotpotQA
//     (LoadSQuAD, LoadHotpot), laid out as RULER's qa_1/qa_2: the question,
//     the documents (gold among distractors), the question again.
//
// Needles and gold paragraphs go where pruning may drop them: after the
// first sdtp.HeadKeep tokens and the prompt's head, ending before the
// protected tail (sdtp.TailLen), at positions stratified over the prompts
// of a cell so every depth band is measured. Instruct models get their chat
// template (Format.Chat), base models a completion prompt ending in an
// answer prefix.
//
// Records caches each answer under a key of model, mode, schedule, budget
// and prompt tokens, so long runs resume. The statistics (95% Wilson
// intervals, paired counts against dense) are numeric.Wilson and
// numeric.Paired.
package fidelity
