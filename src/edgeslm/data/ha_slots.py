"""Slot values for sampling Home Assistant's grammars: the lists HA fills at run time from a user's
own home (areas, floors, entity names) and the wildcards (timer names, media, list items, messages).

Written by the edgeslm developers; deliberately broad (many households, naming habits, domains)
so that a model learns the shape of a command rather than a handful of names. Each list is split
into train and held-out values by a stable hash, so test sentences carry names never trained on.
"""

AREAS = [
    "living room", "kitchen", "bedroom", "master bedroom", "main bedroom", "guest room", "guest bedroom",
    "bathroom", "master bathroom", "half bath", "office", "home office", "study", "den", "garage",
    "basement", "attic", "hallway", "hall", "upstairs hallway", "entryway", "foyer", "dining room",
    "laundry room", "utility room", "mudroom", "pantry", "nursery", "playroom", "kids room",
    "Emma's room", "Jack's room", "Ben's room", "Sophia's bedroom", "Noah's room", "family room",
    "great room", "sunroom", "porch", "front porch", "back porch", "patio", "deck", "backyard",
    "front yard", "garden", "driveway", "shed", "workshop", "gym", "home gym", "media room",
    "theater", "cinema room", "library", "loft", "closet", "walk-in closet", "stairs", "staircase",
    "lounge", "sitting room", "reception", "conference room", "break room", "lobby", "server room",
    "wine cellar", "cellar", "pool house", "balcony", "terrace", "greenhouse", "barn", "studio",
    "craft room", "music room", "game room", "toilet", "powder room", "ensuite", "bar",
    "kitchenette", "breakfast nook", "back door area", "upstairs bathroom", "downstairs bathroom",
    "second bedroom", "third bedroom", "spare room", "tv room", "man cave", "sewing room",
]

FLOORS = [
    "first floor", "second floor", "third floor", "ground floor", "upstairs", "downstairs",
    "top floor", "main floor", "upper floor", "lower floor", "lower level",
    "upper level", "main level", "attic floor", "1st floor", "2nd floor", "loft level", "mezzanine",
]

NAMES = {
    "light": [
        "ceiling light", "desk lamp", "floor lamp", "kitchen light", "porch light", "lamp", "bedside lamp",
        "night light", "reading light", "pendant", "chandelier", "string lights", "led strip", "hallway light",
        "bathroom mirror light", "garage light", "island lights", "accent light", "spotlight", "wall sconce",
        "christmas lights", "fairy lights", "table lamp", "couch lamp", "porch lights", "cabinet lights",
        "under cabinet lights", "vanity light", "path lights", "flood light", "nursery lamp", "tv backlight",
        "hue go", "office lamp", "bed light", "stair lights", "deck lights", "closet light", "fan light",
        "living room lamp", "kitchen pendant", "dining light", "entry light", "salt lamp", "lava lamp",
    ],
    "switch": [
        "coffee maker", "kettle", "space heater", "dehumidifier", "humidifier", "christmas tree",
        "fountain", "pump", "dishwasher plug", "tv plug", "smart plug", "outlet", "power strip",
        "monitor", "printer", "electric blanket", "heated floor", "towel warmer", "fish tank", "aquarium",
        "water heater", "pool pump", "irrigation", "sprinkler", "air purifier", "toaster", "rice cooker",
        "charger", "router", "3d printer", "soldering station", "sound machine", "diffuser", "fireplace",
    ],
    "fan": [
        "ceiling fan", "fan", "bedroom fan", "desk fan", "box fan", "tower fan", "exhaust fan",
        "bathroom fan", "attic fan", "standing fan", "office fan", "kitchen hood", "range hood",
        "air circulator", "patio fan", "dyson", "living room fan", "whole house fan",
    ],
    "cover": [
        "garage door", "blinds", "curtains", "shades", "roller shutter", "awning", "gate",
        "skylight", "window", "kitchen blinds", "bedroom curtains", "shutters", "front gate",
        "patio door", "living room shades", "office blinds", "side gate", "roof window", "drapes",
        "sun shade", "pergola", "barn door", "driveway gate", "bay window blinds",
    ],
    "lock": [
        "front door", "back door", "side door", "garage door lock", "deadbolt", "patio door lock",
        "front door lock", "back gate lock", "shed lock", "mailbox", "smart lock", "main entrance",
        "basement door", "porch door", "safe",
    ],
    "valve": [
        "water valve", "main water", "gas valve", "sprinkler valve", "garden valve", "irrigation valve",
        "water main", "hose valve",
    ],
    "climate": [
        "thermostat", "heat pump", "air conditioner", "ac", "a/c", "heater", "furnace", "hvac",
        "nest", "ecobee", "upstairs thermostat", "downstairs thermostat", "mini split", "radiator",
        "heating", "air conditioning", "floor heating", "bedroom heater", "office ac",
    ],
    "media_player": [
        "tv", "television", "speaker", "kitchen speaker", "sonos", "echo", "google home", "nest mini",
        "homepod", "soundbar", "stereo", "apple tv", "chromecast", "roku", "shield", "receiver",
        "bedroom tv", "living room tv", "office speaker", "radio", "record player", "jukebox",
        "bathroom speaker", "patio speakers", "projector", "fire tv", "spotify", "plex", "kodi",
        "media player", "music", "bose", "smart display",
    ],
    "todo": [
        "to-do", "todo", "chores", "groceries", "grocery", "hardware store", "costco", "packing",
        "honey do", "work", "errands", "garden tasks", "weekend", "school", "gift", "party",
        "homework", "christmas", "camping", "reading", "movies to watch", "home improvement",
        "pharmacy", "cleaning",
    ],
    "weather": [
        "home", "forecast home", "cabin", "weather station", "backyard station", "beach house",
        "lake house", "office", "openweathermap", "met.no", "accuweather", "outside",
    ],
    "vacuum": [
        "vacuum", "roomba", "robot vacuum", "roborock", "dreame", "deebot", "robot", "vacuum cleaner",
        "rosie", "upstairs vacuum", "downstairs roomba", "mop", "dustin", "eufy",
    ],
    "lawn_mower": [
        "lawn mower", "mower", "robot mower", "automower", "husqvarna", "worx", "landroid",
        "front lawn mower", "back lawn mower", "grass cutter", "mowbot",
    ],
    "sensor": [
        "outdoor temperature", "humidity", "living room temperature", "power usage", "energy",
        "battery level", "co2", "air quality", "pm2.5", "water usage", "solar production",
        "electricity price", "fridge temperature", "freezer temperature", "rain gauge", "wind speed",
        "uv index", "pool temperature", "soil moisture", "noise level", "phone battery", "car battery",
        "printer ink", "internet speed", "pressure", "illuminance",
    ],
    "binary_sensor": [
        "front door sensor", "motion sensor", "back door sensor", "window sensor", "leak sensor",
        "smoke detector", "mailbox sensor", "garage sensor", "doorbell", "occupancy", "water leak",
        "washing machine", "dryer", "dishwasher", "bed sensor", "gate sensor", "presence",
    ],
    "person": [
        "Alice", "Bob", "Mom", "Dad", "John", "Sarah", "Michael", "Emma", "Olivia", "Liam", "Sophia",
        "grandma", "grandpa", "Maria", "Carlos", "Priya", "Raj", "Wei", "Yuki", "Fatima", "Omar",
        "Lucas", "Mia", "Chloe", "James", "Anna", "David", "Nina", "the kids", "Paul",
    ],
    "scene": [
        "movie time", "movie night", "bedtime", "good night", "good morning", "dinner", "party",
        "romantic", "reading", "relax", "focus", "away", "welcome home", "wake up", "evening",
        "night mode", "all off", "cozy", "bright", "dim", "sunset", "christmas", "game night",
    ],
    "script": [
        "morning routine", "leaving home", "arrive home", "bedtime routine", "feed the cat",
        "start coffee", "water the plants", "lockdown", "panic", "vacation mode",
    ],
    "button": ["doorbell", "restart router", "garage button", "reboot", "ring chime", "identify"],
    "input_boolean": ["guest mode", "vacation mode", "sleep mode", "do not disturb", "party mode", "away mode"],
}

# Which entity pool a `{name}` stands for when a template does not say (no requires_context).
NAME_DOMAINS_BY_INTENT = {
    "HassClimateGetTemperature": ["climate", "sensor"],
    "HassClimateSetFanMode": ["climate"],
    "HassClimateSetTemperature": ["climate"],
    "HassFanSetSpeed": ["fan"],
    "HassGetWeather": ["weather"],
    "HassLawnMowerDock": ["lawn_mower"],
    "HassLawnMowerStartMowing": ["lawn_mower"],
    "HassVacuumStart": ["vacuum"],
    "HassVacuumReturnToBase": ["vacuum"],
    "HassVacuumCleanArea": ["vacuum"],
    "HassListAddItem": ["todo"],
    "HassListCompleteItem": ["todo"],
    "HassListRemoveItem": ["todo"],
    "HassLightSet": ["light"],
    "HassSetPosition": ["cover", "valve"],
    "HassMediaNext": ["media_player"],
    "HassMediaPrevious": ["media_player"],
    "HassMediaPause": ["media_player"],
    "HassMediaUnpause": ["media_player"],
    "HassMediaPlayerMute": ["media_player"],
    "HassMediaPlayerUnmute": ["media_player"],
    "HassMediaSearchAndPlay": ["media_player"],
    "HassSetVolume": ["media_player"],
    "HassSetVolumeRelative": ["media_player"],
}

WILDCARDS = {
    "message": [
        "dinner is ready", "time to go", "the movie is starting", "we're leaving in five minutes",
        "someone is at the door", "bedtime in ten minutes", "come down for breakfast", "lunch is served",
        "please turn off the tv", "the laundry is done", "grandma is here", "time for homework",
        "the pizza arrived", "let's go", "it's time to wake up", "the car is here", "clean up your room",
        "who took my charger", "meeting starts now", "happy birthday dad", "the bus is coming",
        "practice starts in 20 minutes", "feed the dog", "shoes on everyone", "quiet please",
    ],
    "search_query": [
        "taylor swift", "the beatles", "abbey road", "bohemian rhapsody", "jazz", "lofi beats",
        "the daily", "serial", "stranger things", "the office", "star wars", "frozen", "queen",
        "miles davis", "kind of blue", "classical music", "my workout playlist", "discover weekly",
        "radiohead", "ok computer", "beyonce", "lemonade", "the lion king", "inception", "npr news",
        "dua lipa", "ed sheeran", "dark side of the moon", "pink floyd", "chill vibes", "coldplay",
        "hamilton", "the weeknd", "blinding lights", "adele", "hello", "breaking bad", "the crown",
        "bluey", "peppa pig", "radiolab", "this american life", "morning jazz", "rain sounds",
        "white noise", "drake", "bad bunny", "mozart", "beethoven symphony 9", "top 40",
    ],
    "timer_name": [
        "pizza", "pasta", "eggs", "laundry", "oven", "cookies", "tea", "bread", "chicken", "rice",
        "nap", "homework", "workout", "meditation", "parking", "turkey", "cake", "steak",
        "potatoes", "roast", "plank", "break", "study", "dryer", "bath", "coffee", "popcorn", "sauce",
    ],
    "timer_command": [
        "turn off the lights", "turn off the tv", "turn on the porch light", "close the garage door",
        "lock the front door", "pause the music", "turn off the kitchen lights", "open the blinds",
        "turn on the fan", "turn off the bedroom fan", "set the thermostat to 68", "start the vacuum",
        "turn off the coffee maker", "dim the living room lights", "turn the heater off",
    ],
    "shopping_list_item": [
        "milk", "eggs", "bread", "butter", "apples", "bananas", "coffee", "toilet paper", "paper towels",
        "dish soap", "olive oil", "chicken breast", "rice", "pasta", "tomatoes", "onions", "garlic",
        "cheese", "yogurt", "orange juice", "cereal", "batteries", "light bulbs", "dog food",
        "cat litter", "shampoo", "toothpaste", "flour", "sugar", "avocados", "spinach", "ice cream",
        "trash bags", "detergent", "coffee filters", "peanut butter", "a birthday card", "two lemons",
    ],
    "todo_list_item": [
        "call the plumber", "pay rent", "buy a gift for mom", "mow the lawn", "clean the gutters",
        "book dentist appointment", "renew passport", "fix the fence", "water the plants",
        "take out the trash", "walk the dog", "change the air filter", "wash the car", "milk",
        "screws", "paint", "sandpaper", "tent", "sleeping bag", "sunscreen", "email the teacher",
        "return library books", "file taxes", "replace smoke detector battery", "vacuum the stairs",
    ],
    "zone": [
        "home", "work", "the office", "school", "the gym", "grandma's house", "the store",
        "the airport", "church", "the park", "downtown", "university", "the mall", "the hospital",
        "daycare", "the beach",
    ],
}
