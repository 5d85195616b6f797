//! Build plans: the repo's Dockerfile, or a plan generated from the detected stack.
