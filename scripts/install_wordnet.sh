#!/usr/bin/env bash
# Make NLTK's WordNet 3.0 corpus available offline from Debian's packages.
# janus-build does not need it at run time (it ships a WordNet noun lemma table); the tests
# use it to check that table against NLTK's own WordNetLemmatizer, and
# scripts/generate_classnames.py uses it to regenerate the table.
#   NLTK_DATA (default ~/nltk_data) receives corpora/wordnet/.
set -euo pipefail
target="${NLTK_DATA:-$HOME/nltk_data}/corpora/wordnet"
if [ -f "$target/index.sense" ] && [ -f "$target/lexnames" ] && [ -f "$target/data.noun" ]; then
  exit 0
fi
if [ ! -f /usr/share/wordnet/data.noun ] || [ ! -f /usr/share/wordnet/index.sense ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wordnet-base wordnet-sense-index >/dev/null
  else
    echo "install_wordnet: WordNet is missing; run as root on Debian/Ubuntu, or: python -m nltk.downloader wordnet" >&2
    exit 1
  fi
fi
mkdir -p "$target"
# NLTK refuses a symlinked corpus directory: copy the files.
cp -f /usr/share/wordnet/{adj,adv,noun,verb}.exc /usr/share/wordnet/{data,index}.{adj,adv,noun,verb} \
      /usr/share/wordnet/index.sense "$target/"
# Debian does not ship 'lexnames' (the 45 lexicographer files of WordNet 3.0); NLTK needs it.
names="adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body
noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location noun.motive
noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process noun.quantity
noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change verb.cognition
verb.communication verb.competition verb.consumption verb.contact verb.creation verb.emotion verb.motion
verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
i=0; : > "$target/lexnames"
for n in $names; do
  case $n in adj.*) c=3;; adv.*) c=4;; noun.*) c=1;; verb.*) c=2;; esac
  printf '%02d\t%s\t%s\n' "$i" "$n" "$c" >> "$target/lexnames"; i=$((i+1))
done
echo "install_wordnet: WordNet 3.0 installed for NLTK in $target"
