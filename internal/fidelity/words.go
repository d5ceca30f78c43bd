package fidelity

import "strings"

// Words for keys, word values and the common-words lists: plain, concrete
// English nouns and adjectives, one token or two in most vocabularies.
var (
	adjectives = strings.Fields(`amber ancient autumn bitter blue brave bright broken calm clever cold copper
crimson curious dark distant dusty eager early electric empty faded fierce frozen gentle golden
green grey hidden hollow humble icy iron jade lazy little lonely loud lucky marble misty modest
narrow noble northern old pale patient polished proud purple quiet rapid restless rusty sacred
scarlet secret silent silver sleepy slow small smooth southern spare steady stone sudden sunny
swift tall tender tiny velvet violet wandering warm western wild winter wooden yellow young`)
	nouns = strings.Fields(`anchor apple arrow badge barrel basket beacon bell bicycle blanket bottle
bridge brush bucket button cabin camera candle canyon carpet castle cedar chair chimney clock cloud
compass cottage crown cup desk diamond dragon drum eagle engine feather fence fiddle flag flute
forest fountain garden gate glove hammer harbor helmet hill horse island jacket jar kettle key
ladder lake lantern leaf lemon library lighthouse lion map meadow mirror monkey mountain needle
nest ocean orchard otter owl paddle palace parrot pebble pencil pepper piano pillow planet pocket
pond quilt rabbit raven ribbon river robot rocket saddle sail shell shovel signal spoon squirrel
stable statue stove sword table teapot temple thimble tiger tower tractor trumpet tunnel turtle
umbrella valley violin wagon wallet whale whistle window wizard wolf zebra`)
)
