// Package score runs the job of `ortrain score`: it reads hypothesis and
// reference files and scores them with BLEU, chrF or ROUGE through one
// metrics.Scorer, either line by line or as a corpus (with a bootstrap
// estimate and a statistics file for sharded runs when asked). Merge turns
// the statistics files of shards into the corpus score of a single pass.
// Both return a Report, which writes itself as text or JSON.
//
// Errors caused by the user's files match ortrain.ErrInput with errors.Is;
// options that are missing, out of range or contradict each other match
// ortrain.ErrSettings. Messages name the ortrain score flags.
package score
