#!/usr/bin/env bash
# Trains the models the page ships (web/www/models/), on the built-in digits at 16x16:
#   teacher.saad       the strong teacher: small-cnn-8, PGD-AT, 12 epochs
#   teacher-weak.saad  the weak teacher: small-cnn-4, PGD-AT, 12 epochs (the training lab's
#                      "robust saturation" comparison distils one student from each)
#   student.saad       a small-cnn-4 student distilled from the strong teacher with SAAD
# Seeded on flex: the same `saad eval` accuracies on every run of the same build (checked by
# running it twice); the files differ in their bytes (burn draws parameter ids at random).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
saad() { cargo run -q -p saad-native --bin saad -- "$@"; }
common=(--data digits --image-size 16 --batch-size 64 --lr 0.05 --schedule cosine --no-augment --eval-every 0 --seed 0 --device flex --quiet)
saad train "${common[@]}" --arch small-cnn-8 --method pgd-at --epochs 12 --out "$out/teacher"
saad train "${common[@]}" --arch small-cnn-4 --method pgd-at --epochs 12 --out "$out/teacher-weak"
saad train "${common[@]}" --arch small-cnn-4 --method saad --epochs 8 --teacher "$out/teacher/model.saad" --out "$out/student"
mkdir -p web/www/models
for name in teacher teacher-weak student; do
  cp "$out/$name/model.saad" "web/www/models/$name.saad"
  echo "$name.saad:" >&2
  saad eval --checkpoint "web/www/models/$name.saad" --attacks clean,pgd20 --device flex --quiet >&2
done
ls -l web/www/models
