#!/usr/bin/env bash
# Trains the small teacher/student pair the page ships (web/www/models/), on the built-in digits
# at 16x16: a PGD-AT small-cnn-8 teacher and a small-cnn-4 student distilled from it with SAAD.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(mktemp -d)
saad() { cargo run -q -p saad-native --bin saad -- "$@"; }
common=(--data digits --image-size 16 --batch-size 64 --lr 0.05 --schedule cosine --no-augment --eval-every 0 --seed 0 --device flex --quiet)
saad train "${common[@]}" --arch small-cnn-8 --method pgd-at --epochs 12 --out "$out/teacher"
saad train "${common[@]}" --arch small-cnn-4 --method saad --epochs 8 --teacher "$out/teacher/model.saad" --out "$out/student"
mkdir -p web/www/models
cp "$out/teacher/model.saad" web/www/models/teacher.saad
cp "$out/student/model.saad" web/www/models/student.saad
ls -l web/www/models
