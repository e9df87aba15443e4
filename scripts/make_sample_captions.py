"""Write janus_build/data/sample_captions.parquet: the caption sample shipped with janus-build.

Web-style alt-texts written for this project (not copied from any dataset), with the class a
person would give each image (ImageNet-1k index, -1 for none of the IN100 classes). It mixes
the cases subset matching meets on real data: HTML and URLs, plurals and possessives, mixed
case, product titles, other languages, ambiguous words and captions about no class.

    python scripts/make_sample_captions.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent

# Hand-written captions: (caption, true class or -1).
HANDWRITTEN = [
    ('<a href="https://example.org/p/1">Canada geese</a> landing on the lake at dusk', 99),
    ("A flock of GEESE crossing the road near the farm", 99),
    ("goose down duvet, king size, 600 fill power | free shipping", -1),
    ("Great white shark breaching off Seal Island, False Bay", 2),
    ("shark week poster vintage print", -1),
    ("The lion's mane glowing in golden-hour light, Masai Mara", 291),
    ("Lions resting under an acacia tree https://example.org/safari?id=77", 291),
    ("Detroit Lions vs Packers tickets section 112", -1),
    ("Stingray gliding over the sand in the Cayman Islands", 6),
    ("Chevrolet Corvette Stingray 2020 red convertible for sale", -1),
    ("macaw parrot on a branch, blue and gold", 88),
    ("Scarlet macaws feeding on clay licks in the Peruvian Amazon", 88),
    ("koala sleeping in a eucalyptus tree in Queensland", 105),
    ("Koala bear plush toy 30cm kids gift", -1),
    ("jellyfish drifting in the aquarium under blue light", 107),
    ("moon jellyfish &amp; lion's mane jellyfish at the Monterey Bay Aquarium", 107),
    ("Flamingos wading in the salt pans of Camargue", 130),
    ("pink flamingo pool float inflatable", -1),
    ("Tarantula crawling across a leaf at night", 76),
    ("peacock displaying its tail feathers at the palace gardens", 84),
    ("Bald eagle perched on a snag above the river", 22),
    ("Vulture circling over the desert canyon", 23),
    ("A junco hopping in the fresh snow under the feeder", 13),
    ("magpie on the garden fence", 18),
    ("Black-capped chickadee at the bird feeder in winter", 19),
    ("hen and her chicks in the backyard coop", 8),
    ("Hen party sash and tiara set, 12 pieces", -1),
    ("California quail family crossing the trail", 85),
    ("Red-necked wallaby with joey in pouch, Tasmania", 104),
    ("Dungeness crab boil with corn and potatoes", 118),
    ("Nudibranch (sea slug) on coral reef, Anilao macro dive", 115),
    ("Un perro jugando en la playa al atardecer", -1),
    ("Ein schöner Sonnenuntergang über den Bergen", -1),
    ("日本の桜と富士山", -1),
    ("", -1),
    ("    ", -1),
    ("IMG_20190612_123456.jpg", -1),
    ("Free shipping on orders over $50 - shop now!", -1),
    ("Wedding dress lace mermaid gown with long train", -1),
    ("Modern living room interior with grey sofa and wooden floor", -1),
    ("Chain-link fence around an empty basketball court", 489),
    ("Rusty chain link fence with barbed wire on top", 489),
    ("Wooden baluster and handrail on a spiral staircase", 421),
    ("Stainless steel cocktail shaker set with jigger and strainer", 503),
    ("Vintage typewriter keyboard close-up", 878),
    ("Grand piano on stage before the concert", 579),
    ("Steinway grand piano in a sunlit hall", 579),
    ("Soccer ball on the grass at the penalty spot", 805),
    ("Pizza margherita fresh out of the wood-fired oven", 963),
    ("Pizza slice cushion pillow, funny gift", -1),
    ("Fire truck parked outside the station", 555),
    ("School bus waiting at the curb on the first day of school", 779),
    ("Broccoli florets steamed with garlic and lemon", 937),
    ("Banana bread loaf with walnuts on a cooling rack", 954),
    ("ripe bananas hanging at the market stall", 954),
    ("Orange slices on a white plate, fresh fruit", 950),
    ("Red wine glass on a rustic table", 966),
    ("Lemon tree in a terracotta pot on the balcony", 951),
    ("Volcano erupting with lava flows at night, Iceland", 980),
    ("Sunset over a volcano crater lake", 980),
    ("Mushroom foraging in autumn woods: chanterelles and porcini", 947),
    ("Hot air balloon festival over the valley at sunrise", 417),
    ("Goldfish bowl on a desk with a single goldfish", 1),
    ("Tiger shark swimming with remoras in the Bahamas", 3),
    ("Candle light dinner for two with roses", 470),
    ("Strawberry cheesecake with fresh berries", 949),
    ("Acorn squash roasted with brown sugar", 941),
    ("Sunglasses on the beach towel next to a paperback", 837),
    ("Blue jeans and white sneakers street style", 608),
    ("Sports car racing on a mountain road at sunset", 817),
    ("A red sports car parked on a cobblestone street", 817),
]

TEMPLATES = [
    "{Name} photographed in the wild",
    "close-up photo of a {name}",
    "My {name} photo from last weekend's trip",
    "{name} | high resolution stock photo",
    "Beautiful {name}s, nature photography",
    "a {name} in natural light",
]


def main() -> None:
    classes = []
    with open(ROOT / "classnames" / "in100.tsv", encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        classes = [(int(r["class_id"]), r["name"]) for r in rows]
    rng = random.Random(20231)
    captions = list(HANDWRITTEN)
    for class_id, name in classes:
        clean = name.split(" (")[0].split(" / ")[0]
        for template in rng.sample(TEMPLATES, 2):
            captions.append((template.format(name=clean, Name=clean[:1].upper() + clean[1:]), class_id))
    table = pa.table(
        {
            "TEXT": [c for c, _ in captions],
            "URL": [f"https://images.example.org/sample/{i:05d}.jpg" for i in range(len(captions))],
            "class_id": pa.array([t for _, t in captions], pa.int32()),
        }
    )
    out = ROOT / "janus_build" / "data" / "sample_captions.parquet"
    pq.write_table(table, out, compression="zstd")
    print(f"wrote {out.relative_to(ROOT)} ({table.num_rows} captions)")


if __name__ == "__main__":
    main()
