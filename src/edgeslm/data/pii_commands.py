"""A labelled test set for PII redaction: smart-home commands that carry people's names, phone numbers,
emails, street addresses and codes, with every PII span marked, beside commands that carry none, to
measure what a redactor wrongly removes. Both kinds also mark what must survive redaction: the home's
entity, area and floor names and the numbers of settings.

The people, addresses, numbers and phrasings are written by hand for this module, from many cultures.
They are not drawn from any package's name list, so a redactor that uses one (the `names` package's
US Census lists) is measured on names it was not built from; `overlap()` reports how many of ours
its lists happen to hold. Deterministic for a seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

PII_TYPES = ("PERSON", "PHONE", "EMAIL", "ADDRESS", "CODE")

# People, by hand, from many naming traditions (given name first, as people say them to an assistant).
PEOPLE = """
Maria Gonzalez, Joe Bradley, Aisha Bello, Chen Wei, Priya Raman, Oluwaseun Adeyemi, Siobhan Gallagher,
Hiroshi Tanaka, Yuki Nakamura, Min-jun Park, Seo-yeon Kim, Nguyen Thi Lan, Tran Van Minh, Somchai Wongsakul,
Malee Srisuk, Rizal Pratama, Dewi Lestari, Juan dela Cruz, Maricel Santos, Kwame Mensah, Ama Owusu,
Chinedu Okafor, Ngozi Eze, Amina Musa, Ibrahim Abdullahi, Wanjiru Kamau, Otieno Ochieng, Tesfaye Bekele,
Hanna Girma, Thandiwe Nkosi, Sipho Dlamini, Fatima Zahra Benali, Youssef El Amrani, Layla Haddad,
Omar Farouk, Nour Khalil, Karim Mansour, Reza Tehrani, Shirin Ahmadi, Dariush Karimi, Noa Levi, Avi Cohen,
Tamar Friedman, Mehmet Yilmaz, Elif Demir, Ayse Kaya, Burak Celik, Giorgos Papadopoulos, Eleni Georgiou,
Dimitra Nikolaidou, Aleksandr Volkov, Natalia Sokolova, Olena Shevchenko, Taras Bondarenko, Katarzyna Nowak,
Piotr Wisniewski, Agnieszka Kowalczyk, Jana Novakova, Tomas Dvorak, Zsofia Nagy, Bence Horvath,
Ioana Popescu, Andrei Ionescu, Milica Jovanovic, Luka Horvat, Mateja Kovac, Bjorn Lindqvist, Astrid Nilsson,
Ingrid Haugen, Lars Pedersen, Freja Sorensen, Aino Virtanen, Eero Korhonen, Sigrun Jonsdottir,
Pieter de Vries, Sanne Jansen, Lotte Vermeulen, Jules Peeters, Amelie Dubois, Thibault Lefevre,
Camille Moreau, Margaux Girard, Lukas Schneider, Annika Fischer, Jurgen Weber, Greta Hoffmann,
Matteo Rossi, Giulia Bianchi, Alessandro Ferrari, Chiara Esposito, Lucia Fernandez, Javier Moreno,
Carmen Ruiz, Iker Etxeberria, Joao Silva, Beatriz Oliveira, Thiago Pereira, Mariana Costa, Sofia Rodrigues,
Diego Ramirez, Valentina Herrera, Camila Vargas, Santiago Castillo, Ximena Morales, Mateo Guerrero,
Isabella Rojas, Catalina Munoz, Emiliano Cruz, Guadalupe Reyes, Rosa Jimenez, Alejandro Torres,
Arjun Mehta, Kavya Iyer, Rohan Desai, Ananya Chatterjee, Vikram Singh, Harpreet Kaur, Gurpreet Gill,
Deepika Nair, Sanjay Reddy, Lakshmi Subramanian, Ravi Shankar, Meera Pillai, Aditya Banerjee,
Farhan Qureshi, Sana Malik, Bilal Chaudhry, Ayesha Siddiqui, Tahmina Akter, Rahim Uddin, Nimal Perera,
Dilani Fernando, Pemba Sherpa, Sunita Thapa, Li Na, Wang Fang, Zhang Hao, Liu Yang, Zhou Xin,
Huang Mei, Lin Jia, Xu Lei, Sun Li, Ma Jun, Hou Yifan, Kenji Watanabe, Sakura Ito, Haruto Suzuki, Aoi Kobayashi,
Daichi Yamamoto, Emi Sato, Ji-ho Choi, Hye-jin Lee, Dong-hyun Kang, Bora Yoon, Batbayar Ganbold,
Saule Nurlanovna, Timur Akhmetov, Dilnoza Karimova, Aroha Ngata, Tane Walker, Keola Kahananui,
Leilani Akana, Sione Tupou, Mele Fifita, Liam O'Connor, Niamh Byrne, Ciaran Doyle, Aoife Murphy,
Rhys Llewellyn, Cerys Evans, Angus MacLeod, Morag Campbell, Eilidh Fraser, Oliver Bennett, Charlotte Hughes,
George Whitfield, Emily Harrington, Jack Thornton, Harriet Ashworth, Dylan Carter, Madison Brooks,
Tyler Jenkins, Brianna Foster, Jamal Washington, Keisha Robinson, DeShawn Harris, Latoya Jackson,
Ethan Miller, Olivia Anderson, Noah Thompson, Ava Martinez, Lucas Garcia, Mia Wilson, Mason Clark,
Chloe Lewis, Logan Young, Zoe Allen, Caleb Wright, Hannah Scott, Owen Mitchell, Lily Turner,
Nathaniel Phillips, Grace Campbell, Wyatt Parker, Audrey Collins, Levi Stewart, Naomi Morris, Ezra Rogers,
Ruth Cook, Silas Morgan, Hazel Bell, Jasper Murphy, Ivy Cooper, Felix Richardson, Clara Cox, Hugo Howard,
Stella Ward, Miles Peterson, Nora Gray, Arlo Ramsey, Iris James, Theo Watson, Esme Brooks, Rowan Kelly,
Quinn Sanders, Sage Price, Remy Bishop, Marisol Ochoa, Xochitl Mendoza, Yolanda Cardenas, Anahi Quispe,
Wayra Mamani, Koa Makoa, Nalani Kealoha, Cheveyo Begay, Winona Yazzie, Dakota Tsosie, Inuk Kristiansen,
Bongani Zulu, Naledi Mokoena, Chipo Moyo, Tendai Chikwanha, Abebe Tadesse, Zainab Sesay, Mamadou Diallo,
Aminata Traore, Seydou Keita, Fatoumata Coulibaly, Moussa Ndiaye, Awa Sow, Kofi Boateng, Efua Asante,
Emeka Nwosu, Yetunde Balogun, Babajide Ogunleye, Halima Yusuf, Nasra Abdi, Abdirahman Warsame
"""
PERSON_NAMES = tuple(n.strip() for n in PEOPLE.replace("\n", " ").split(",") if n.strip())

# Street addresses as people say them, several countries, some with a city or postcode.
ADDRESSES = (
    "221B Baker Street", "742 Evergreen Terrace", "1600 Amphitheatre Parkway", "4 Privet Drive",
    "350 Fifth Avenue", "12 Grimmauld Place", "31 Spooner Street", "1313 Mockingbird Lane",
    "55 Elm Street, Apt 4B", "908 Oak Ridge Road", "17 Cherry Tree Lane", "2200 Sunset Boulevard",
    "48 Maple Court", "301 Pine Hollow Drive", "76 Harbour View Crescent", "14 Willow Way",
    "1 Infinite Loop, Cupertino, CA 95014", "1600 Pennsylvania Ave NW, Washington, DC 20500",
    "600 Montgomery St, San Francisco, CA 94111", "233 S Wacker Dr, Chicago, IL 60606",
    "89 Lakeshore Blvd, Toronto, ON M5V 2T6", "10 Downing Street, London SW1A 2AA",
    "27 Old Gloucester Street, London WC1N 3AX", "8 Princes Street, Edinburgh EH2 2ER",
    "14 Rue de Rivoli, 75004 Paris", "52 rue des Martyrs", "Hauptstrasse 5, 10115 Berlin",
    "Kurfurstendamm 21", "Calle Mayor 12, 28013 Madrid", "Via Roma 34, 00184 Roma",
    "Prinsengracht 263, Amsterdam", "Rua Augusta 100, Lisboa", "Avenida Paulista 1578, Sao Paulo",
    "Av. Reforma 222, Ciudad de Mexico", "45 Queen Street West", "7 George Street, Sydney NSW 2000",
    "120 Collins St, Melbourne VIC 3000", "3 Ponsonby Road, Auckland 1011", "18 Nguyen Hue Boulevard",
    "2-1-1 Nihonbashi, Chuo-ku, Tokyo", "88 Gangnam-daero, Seoul", "16 MG Road, Bengaluru 560001",
    "42 Marine Drive, Mumbai 400020", "9 Orchard Road, Singapore 238823", "25 Kenyatta Avenue, Nairobi",
    "11 Adeola Odeku Street, Victoria Island", "5 Long Street, Cape Town 8001", "60 Nile Corniche, Cairo",
    "4410 W 38th Ave, Denver, CO 80212", "1234 NE 45th St, Seattle, WA 98105", "77 Mass Ave, Cambridge, MA 02139",
    "500 Grand Ave #12", "19 Station Road", "3 Mill Lane", "62 Church Hill", "120 High Street",
    "8 Sycamore Close", "29 Beacon Hill Terrace", "410 Riverside Dr, Apt 7", "15 Foxglove Gardens",
)
# Phone numbers in reserved fictional ranges where a country has one (US 555-01xx, UK drama numbers).
PHONES = (
    "415-555-0134", "(212) 555-0199", "555-0142", "+1 312 555 0177", "617.555.0123", "(646) 555-0108",
    "+1-202-555-0165", "408 555 0190", "+44 20 7946 0958", "+44 7700 900461", "020 7946 0321",
    "07700 900877", "+49 30 901820", "+49 170 1234567", "030 23125 000", "+33 1 42 68 53 00",
    "06 12 34 56 78", "+34 912 345 678", "+39 06 6982 1234", "+31 20 794 6000", "+61 2 9374 4000",
    "0491 570 156", "+64 9 123 4567", "+81 3-1234-5678", "+82 2 312 3456", "+91 98765 43210",
    "+86 10 6552 9988", "+55 11 91234-5678", "+52 55 1234 5678", "+27 21 555 0123", "+234 803 123 4567",
    "+254 712 345678", "+971 50 123 4567", "+1 (604) 555-0187", "5125550116", "+353 1 555 0123",
)
CODES = ("4821", "0000", "7391", "1984", "2580", "93715", "602214", "4417", "1357", "8008", "31415", "2468",
         "A7K2", "5150", "0912", "77412")
CARDS = ("4111 1111 1111 1111", "5500 0000 0000 0004", "3400 000000 00009", "4012-8888-8888-1881",
         "6011 0009 9013 9424", "5105105105105100")
PASSWORDS = ("sunflower22", "Tr0ub4dor&3", "hunter2", "BlueHeron!88", "correcthorsebattery", "Mango-Tango-7")

# Commands with PII. {person} is a full name or a given name alone; the home's names and setting
# numbers ({area}, {entity}, {floor}, {temp}, {pct}, {minutes}) are what must survive redaction.
PII_TEMPLATES = (
    "text {person} that the {entity} is open", "call {person}", "call {person} on speaker in the {area}",
    "send a message to {person} saying dinner is ready", "tell {person} the {area} lights are off",
    "ask {person} to turn off the {entity} when she leaves", "remind me to call {person} in {minutes} minutes",
    "let {person} know the {entity} is on", "ring {person} and put it on the {area} speaker",
    "is {person} home yet", "did {person} unlock the {entity}", "when {person} arrives turn on the {entity}",
    "{person} is coming over at 7 so set the {area} to {temp} degrees", "let {person} in through the {entity}",
    "play {person}'s playlist in the {area}", "turn the {area} to {temp} degrees for {person}",
    "notify {person} if the {entity} opens", "video call {person} on the {area} display",
    "message {person} and {person} that the {floor} is too cold", "tell my wife {person} I am on my way",
    "my neighbor {person} will feed the cat, unlock the {entity} at {minutes} past",
    "send {person} a photo from the {area} camera", "what did {person} say", "invite {person} for dinner on friday",
    "call {phone}", "dial {phone} on the {area} speaker", "text {phone} that the {entity} is off",
    "save {phone} as {person}'s number", "{person}'s number is {phone}", "call my mom at {phone}",
    "if the alarm goes off call {phone}", "add {phone} to the emergency contacts", "ring {phone} please",
    "send the {area} temperature to {phone}", "my new cell is {phone}",
    "email {email} that the {entity} is on", "email the code {code} to {email}", "send the report to {email}",
    "forward the {area} camera clip to {email}", "my email address is {email}", "share the shopping list with {email}",
    "add {email} to the guest wifi list", "send {person} an email at {email}",
    "navigate to {address}", "how long to drive to {address}", "order a taxi to {address}",
    "set my home address to {address}", "deliveries go to {address}", "what's the weather at {address}",
    "{person} lives at {address}", "send a package to {person} at {address}",
    "remind me to pick up {person} from {address} in {minutes} minutes",
    "the alarm code is {code}", "set the door code to {code}", "disarm the alarm with code {code}",
    "unlock the {entity} with pin {code}", "my pin is {code}", "the garage code is {code}, open the {entity}",
    "arm the alarm, code {code}", "change the keypad code to {code} for {person}", "the gate code is {code}",
    "pay with card {card}", "my card number is {card}", "use card {card} for the grocery order",
    "the wifi password is {password}", "set the guest wifi password to {password}", "my password is {password}",
    "turn on the {entity} and text {person} at {phone}", "tell {person} at {email} the {area} is at {temp} degrees",
    "set the {area} to {temp} degrees and call {person}", "dim the {entity} to {pct} percent then call {phone}",
    "start a {minutes} minute timer and remind {person}", "{person} said the code is {code}",
)
NO_PII_TEMPLATES = (
    "turn on the {entity}", "turn off the {entity}", "switch off the lights in the {area}",
    "set the {area} to {temp} degrees", "set the temperature to {temp}", "dim the {entity} to {pct} percent",
    "set the {entity} brightness to {pct}%", "start a timer for {minutes} minutes", "set a {minutes} minute timer",
    "what is the temperature in the {area}", "is the {entity} on", "close the {entity}",
    "open the {entity} to {pct} percent", "turn off everything on the {floor}", "lights on in the {area}",
    "turn the volume to {pct}", "set the {area} thermostat to {temp}", "is the {entity} locked",
    "what's the humidity in the {area}", "turn on the {floor} lights", "cancel the {minutes} minute timer",
    "how much time is left on the timer", "add milk and bread to the shopping list", "what time is it",
    "will it rain tomorrow", "set the {entity} to {pct}% in {minutes} minutes", "turn up the heat in the {area} by 2 degrees",
    "pause the music in the {area}", "turn off the {entity} at 11 pm", "set an alarm for 6:45 am",
    "make the {area} warmer", "lower the {entity} to {pct} percent", "is anyone in the {area}",
    "turn on the {entity} for {minutes} minutes", "set the fan speed to {pct} percent", "what's the weather like",
    "good night", "i'm leaving", "lock everything on the {floor}", "turn on the {entity} in the {area}",
    "mark laundry as done on the chores list", "set the {area} heating to {temp}.5 degrees",
    "play some jazz in the {area}", "skip this song", "what is on my calendar today",
)

# Written apart from the templates above, after the redactor was built, and never tuned on: one row
# each, PII marked inline as [value](TYPE) and setting numbers as [value](number); {area}, {entity}
# and {floor} are filled from the home. The names here are in neither list above.
HELD_OUT = (
    "hey can you ring [Bartholomew Okonkwo](PERSON) for me",
    "[Francesca](PERSON) wants the {area} at [23](number) degrees when she gets back",
    "please text [Dr. Ramona Estrada](PERSON) that I'll be late",
    "ping [Tobias](PERSON) on the {area} speaker",
    "is [Henrike](PERSON) still in the {area}",
    "tell grandpa [Eustace](PERSON) the {entity} is fixed",
    "what's [Marguerite](PERSON)'s phone number",
    "leave a voice note for [Ignatius Mwangi](PERSON)",
    "facetime [Soraya](PERSON)",
    "I want to call [Rasmus Thorsen](PERSON)",
    "[Kaito](PERSON) is allowed to use the {entity} until [9](number)",
    "ok so [Benedikt](PERSON) and [Zuzana](PERSON) are coming for the weekend",
    "remind [Alvaro](PERSON) to water the plants",
    "send [Yusra](PERSON) the grocery list",
    "let [Mr. Pemberton](PERSON) know the package arrived",
    "could you message [ottilie](PERSON) saying the {entity} is off",
    "tell [jonas brandt](PERSON) to close the {entity}",
    "call [auntie Folake](PERSON)",
    "the babysitter [Anneliese](PERSON) can unlock the {entity}",
    "who is at the door, is it [Cornelius](PERSON)",
    "announce in the {area} that [Wilhelmina](PERSON) is here",
    "give [Thaddeus](PERSON) guest access to the {entity}",
    "dial [(303) 555-0147](PHONE)",
    "my sister's number is [+44 7700 900318](PHONE)",
    "text [0161 496 0732](PHONE) when the {entity} opens",
    "call me back at [720-555-0112](PHONE)",
    "the plumber is on [+1 415 555 0102](PHONE)",
    "add [+61 491 570 110](PHONE) to favourites",
    "store [312.555.0148](PHONE) under [Octavia](PERSON)",
    "phone [+49 89 1234567](PHONE) if the water sensor trips",
    "reach [Lorenzo](PERSON) on [347 555 0163](PHONE)",
    "whatsapp [+34 611 223 344](PHONE) the photo from the {area}",
    "mail the energy report to [ingrid.halvorsen@example.no](EMAIL)",
    "cc [ops-team@home.example](EMAIL) on alerts",
    "email me at [kj_2024@example.com](EMAIL)",
    "forward alerts to [rui.matsuda+home@example.jp](EMAIL)",
    "send [Hamid](PERSON) an invite at [hamid.r@example.net](EMAIL)",
    "set the notification email to [admin@lakehouse.example](EMAIL)",
    "get me a cab to [18 Wellington Road](ADDRESS)",
    "the party is at [930 Sycamore Avenue](ADDRESS)",
    "directions to [62 Rue Saint-Denis](ADDRESS)",
    "my office is at [Schillerstrasse 14](ADDRESS)",
    "ship it to [4 Juniper Close, Bristol BS8 1QU](ADDRESS)",
    "I live at [2750 Ocean View Drive, Apt 12](ADDRESS)",
    "how far is [1 Harbour Street](ADDRESS) from here",
    "save [77 Lindenallee](ADDRESS)... no wait, [Lindenallee 77](ADDRESS) as home",
    "the new place is [Via Garibaldi 8](ADDRESS)",
    "pick [Anouk](PERSON) up at [303 Kingsway](ADDRESS)",
    "the alarm pin is [6619](CODE)",
    "open the {entity}, the code is [4093](CODE)",
    "keypad code [8812](CODE) for the cleaner",
    "use passcode [250913](CODE) to disarm",
    "the garage combination is [3-7-1-9](CODE)",
    "set my pin to [9044](CODE)",
    "guest wifi password: [lemonTree!42](CODE)",
    "charge it to [4242 4242 4242 4242](CODE)",
    "my card is [5555-5555-5555-4444](CODE)",
    "tell [Philippa](PERSON) the door code is [1175](CODE)",
    "give [Desmond](PERSON) the alarm code [5260](CODE)",
    "text [Agnes](PERSON) at [415-555-0171](PHONE) that the {entity} is on",
    "remind me in [15](number) minutes to call [Gunther](PERSON)",
    "set the {area} to [20](number) degrees before [Lucinda](PERSON) arrives",
    "when [Perpetua](PERSON) leaves turn off the {entity}",
    "turn the {entity} to [35](number) percent, [Maximilian](PERSON) is sleeping",
    "email [beatrix.h@example.org](EMAIL) the {area} humidity",
    "[Augustin](PERSON)'s flight lands at [6](number), warm up the {area}",
    "does [Svetlana](PERSON) have a key",
    "[Cosimo](PERSON) said to leave the {entity} on",
    "play something [Esperanza](PERSON) would like in the {area}",
    "is [Bertrand](PERSON)'s car in the garage",
    "unlock the {entity} for [Magdalena](PERSON)",
    "lock up after [Evander](PERSON) leaves",
    "[Rosalind](PERSON) and [Casimir](PERSON) are staying over",
    "message [Percival](PERSON): the {entity} is open",
    "turn off the {entity} and tell [Imogen](PERSON)",
    "can you ask [Leopold](PERSON) if he took the keys",
    "has [Clementine](PERSON) come home",
    "video chat with [Ottavio](PERSON) in the {area}",
    "invite [Seraphina](PERSON) and [Lysander](PERSON) to dinner",
    "set a timer for [10](number) minutes and then call [Fenella](PERSON)",
)
HELD_OUT_CLEAN = (
    "turn the {entity} on for [20](number) minutes", "set the {area} to [19](number) degrees at night",
    "dim the {entity} to [10](number) percent", "open the {entity} halfway", "what is the {area} temperature",
    "turn everything off on the {floor}", "set the volume to [35](number)", "warm up the {area}",
    "start a [25](number) minute pomodoro timer", "add oat milk to the shopping list",
    "put bananas on the grocery list", "remove eggs from the shopping list", "set the timer to [3](number) minutes",
    "make it [2](number) degrees cooler in the {area}", "is the {entity} open", "any motion in the {area}",
    "turn the {entity} off at sunrise", "turn up the {entity}", "stop the music", "next track",
    "play the news", "what's the forecast for saturday", "how hot is it outside", "switch the {entity} to eco mode",
    "will the {entity} turn off by itself", "set brightness to [70](number)% in the {area}",
    "mark grace period on the chores list as done", "I'm home", "we're heading out", "dad wants the heat on",
    "tell me a joke", "call it a night", "bring the {entity} down to [40](number) percent",
    "cancel all timers", "what day is it", "lights to [100](number) percent in the {area}",
    "set the {area} fan to [3](number)", "is it going to snow in march",
    "turn on the {entity} in [5](number) minutes", "change the {area} color to warm white",
)
# A second batch, written once the redactor was frozen and run on it once: the first batch above was
# looked at to fix the redactor's rules, this one never was. First run, both example homes: 108 of 114
# spans out (94.7%). Later changes, made for what the household week and Home Assistant's own grammar
# showed wrongly removed (never for this batch), moved it to 106 (93.0%): see benchmarks/pii_redaction.py.
FROZEN_OUT = (
    "can you phone [Wendeline Achterberg](PERSON) and tell her the {entity} is broken",
    "[Ottoline](PERSON) needs the {area} at [21](number) degrees tonight",
    "please remind [Eamon](PERSON) about the bins",
    "did [Priyanka Chopra-Vasquez](PERSON) leave the {entity} on",
    "send a text to [Rafferty](PERSON) saying the {area} is free",
    "[Temperance](PERSON) is babysitting tonight, unlock the {entity} at [6](number)",
    "tell [hyacinth](PERSON) dinner is at [7](number)",
    "ring my brother [Casper](PERSON)",
    "the dog walker [Marisela Obuya](PERSON) has the code [7740](CODE)",
    "call [Ms. Abernathy](PERSON) at [(206) 555-0119](PHONE)",
    "[Florentyna](PERSON)'s dentist appointment is at [4](number), remind me",
    "alert [Barnaby](PERSON) if the {entity} opens",
    "ask [Dagny](PERSON) whether she turned off the {entity}",
    "I'm expecting [Tobiah Mensah-Lind](PERSON) around noon",
    "open the {entity} when [Ruairi](PERSON) gets here",
    "let [zephyrine](PERSON) know the wifi is back",
    "what time did [Osvaldo](PERSON) get home",
    "turn on the {entity} for [Annunziata](PERSON)",
    "[Leocadia](PERSON) prefers the {area} at [19](number) degrees",
    "notify [Kasimir Wojcik](PERSON) and [Ilse Brandauer](PERSON) that the {entity} is unlocked",
    "call [888-555-0136](PHONE) about the furnace",
    "my landlord's number is [+44 113 496 0555](PHONE)",
    "text [+1 (503) 555-0124](PHONE) if the {entity} is left open",
    "the electrician can be reached on [01632 960 741](PHONE)",
    "add [+64 21 555 0192](PHONE) as an emergency contact",
    "save [929-555-0157](PHONE)",
    "email [m.okonjo@example.ng](EMAIL) the thermostat schedule",
    "send alerts to [family.vargas@example.mx](EMAIL)",
    "share the {area} camera with [guest-1981@example.com](EMAIL)",
    "my backup email is [tove_ek@example.se](EMAIL)",
    "route me to [58 Magnolia Crescent](ADDRESS)",
    "the vet is at [1209 W Addison St, Chicago, IL 60613](ADDRESS)",
    "book a ride to [Bahnhofstrasse 21, 8001 Zurich](ADDRESS)",
    "I moved to [33 Rue Oberkampf](ADDRESS)",
    "deliver to [Flat 2, 9 Ashgrove Road](ADDRESS)",
    "how is traffic to [4700 Kingsway](ADDRESS)",
    "my parents live at [11 Larchmont Terrace](ADDRESS)",
    "the door code for [Hemsworth](PERSON) is [3391](CODE)",
    "disarm with [2207](CODE)",
    "the safe combination is [28-14-06](CODE)",
    "new alarm pin: [5803](CODE)",
    "guest network password is [Kestrel#2024](CODE)",
    "charge the order to [4000 0566 5566 5556](CODE)",
    "my membership number is [80417723](CODE)",
    "set the {entity} to [45](number) percent and message [Rosamund](PERSON)",
    "start a [20](number) minute timer then call [Ignacio](PERSON) on [415-555-0129](PHONE)",
    "if [Quentin](PERSON) asks, the {area} is at [22](number) degrees",
    "[Gwendolyn Achebe](PERSON) will pick up the kids, open the {entity} at [3](number)",
    "tell [Mr Okafor](PERSON) the package is at [17 Pembroke Lane](ADDRESS)",
    "email [Yevgenia](PERSON) at [yev.k@example.ru](EMAIL) that the {entity} is off",
)
FROZEN_OUT_CLEAN = (
    "turn the {entity} down to [15](number) percent", "set the {area} heating to [18](number)",
    "what's the humidity like", "is the {entity} still on", "open the {entity} a bit",
    "switch off all the lights on the {floor}", "start the vacuum", "set a timer for [90](number) seconds",
    "remind me in [10](number) minutes", "turn the {entity} on at [7](number) pm", "pause the {area} speaker",
    "add paper towels to the shopping list", "what is the temperature outside", "close all the blinds",
    "how long until the timer ends", "turn the heat up to [24](number)", "goodnight everyone",
    "set the {entity} to [50](number)%", "is the back door locked", "lights off please",
    "play jazz in the {area} at [20](number) percent volume", "turn off the {entity} in [45](number) minutes",
    "make the {area} brighter", "stop the timer", "unmute the {area}", "what's the weather tomorrow",
    "turn on the fan in the {area}", "dim everything to [30](number) percent", "mark dishes done", "thanks",
)

@dataclass(frozen=True)
class Span:
    start: int
    end: int
    type: str  # a PII type (PERSON, ...) or, for what must survive, area | name | floor | number
    value: str


@dataclass(frozen=True)
class PiiCommand:
    text: str
    pii: tuple[Span, ...] = ()
    keep: tuple[Span, ...] = ()
    template: str = ""
    source: str = "templates"  # templates | held-out
    lowercase: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "pii": [vars(s) for s in self.pii], "keep": [vars(s) for s in self.keep],
                "template": self.template, "source": self.source, "lowercase": self.lowercase}


_SLOT = re.compile(r"\{(\w+)\}|\[([^\]]+)\]\((PERSON|PHONE|EMAIL|ADDRESS|CODE|number)\)")
_PII_SLOT = {"person": "PERSON", "phone": "PHONE", "email": "EMAIL", "address": "ADDRESS", "code": "CODE",
             "card": "CODE", "password": "CODE"}
_KEEP_SLOT = {"area": "area", "entity": "name", "floor": "floor", "temp": "number", "pct": "number", "minutes": "number"}
_DOMAINS = ("example.org", "example.com", "example.net", "mail.example", "post.example.co.uk")


def pii_commands(home: Any, seed: int = 0, n_pii: int = 360, n_clean: int = 180,
                 lowercase_share: float = 0.25) -> list[PiiCommand]:
    """`n_pii` commands with PII and `n_clean` without, for `home` (a runtime.tiers.home.Home, or
    anything with `areas`, `entities`, `floors` that have a `name`). Templates are used in turn so
    each is drawn about as often; `lowercase_share` of the commands come lowercased, as speech
    recognizers often write them."""
    rng = random.Random(seed)
    names = _names(home)
    out = []
    for count, templates in ((n_pii, PII_TEMPLATES), (n_clean, NO_PII_TEMPLATES)):
        order = list(templates)
        for i in range(count):
            if i % len(order) == 0:
                rng.shuffle(order)
            out.append(_fill(order[i % len(order)], names, rng, rng.random() < lowercase_share))
    return out


def held_out(home: Any, seed: int = 0) -> list[PiiCommand]:
    """The hand-written rows, once each, for `home`: `source` is "held-out" for the first batch (looked
    at while building the redactor) and "frozen" for the second (never looked at)."""
    rng = random.Random(seed)
    names = _names(home)
    return ([_fill(t, names, rng, False, "held-out") for t in HELD_OUT + HELD_OUT_CLEAN]
            + [_fill(t, names, rng, False, "frozen") for t in FROZEN_OUT + FROZEN_OUT_CLEAN])


def _names(home: Any) -> dict[str, list[str]]:
    return {"area": [a.name for a in home.areas], "entity": [e.name for e in home.entities],
            "floor": [f.name for f in home.floors] or [a.name for a in home.areas]}


def _fill(template: str, names: dict[str, list[str]], rng: random.Random, lowercase: bool,
          source: str = "templates") -> PiiCommand:
    text, pii, keep, pos = "", [], [], 0
    for m in _SLOT.finditer(template):
        text += template[pos:m.start()]
        slot, marked, kind = m.groups()
        value = marked if marked is not None else _value(slot, names, rng)
        kind = kind or _PII_SLOT.get(slot) or _KEEP_SLOT[slot]
        span = Span(len(text), len(text) + len(value), kind, value)
        (pii if kind in PII_TYPES else keep).append(span)
        text += value
        pos = m.end()
    text += template[pos:]
    lowercase = lowercase and len(text.lower()) == len(text)
    if lowercase:
        text = text.lower()
        pii = [Span(s.start, s.end, s.type, text[s.start:s.end]) for s in pii]
        keep = [Span(s.start, s.end, s.type, text[s.start:s.end]) for s in keep]
    return PiiCommand(text, tuple(pii), tuple(keep), template, source, lowercase)


def _value(slot: str, names: dict[str, list[str]], rng: random.Random) -> str:
    if slot in names:
        return rng.choice(names[slot])
    if slot == "person":
        full = rng.choice(PERSON_NAMES)
        return full if rng.random() < 0.6 else full.split()[0]
    if slot == "email":
        first, *rest = rng.choice(PERSON_NAMES).lower().replace("'", "").split()
        local = rng.choice([f"{first}.{rest[-1]}" if rest else first, f"{first[0]}{rest[-1] if rest else ''}",
                            f"{first}{rng.randint(1, 99)}", f"{first}_{rest[0] if rest else 'home'}"])
        return f"{local}@{rng.choice(_DOMAINS)}"
    pools = {"phone": PHONES, "address": ADDRESSES, "code": CODES, "card": CARDS, "password": PASSWORDS}
    if slot in pools:
        return rng.choice(pools[slot])
    if slot == "temp":
        return str(rng.randint(16, 26))
    if slot == "pct":
        return str(rng.choice([5, 10, 15, 20, 25, 30, 40, 50, 60, 65, 70, 75, 80, 90, 100]))
    if slot == "minutes":
        return str(rng.choice([1, 2, 3, 5, 10, 12, 15, 20, 25, 30, 45, 90]))
    raise KeyError(f"no values for slot {{{slot}}}")


def grammar_commands(n: int = 2000, seed: int = 0) -> tuple[Any, list[str]]:
    """`n` commands sampled from Home Assistant's English grammar (data/ha_intents.py's random walks,
    slots from data/ha_slots.py), none with PII, and the home they speak of (an object with the
    `areas`, `entities` and `floors` that filled them, each with a `name`): to count what a redactor
    wrongly removes from commands written by others than us."""
    from types import SimpleNamespace

    from edgeslm.data import ha_slots
    from edgeslm.data.ha_intents import Sampler, load_grammar, templates

    grammar = load_grammar("en")
    rng = random.Random(seed)
    sampler = Sampler(grammar, rng, heldout=False, heldout_share=0.0)
    pool = templates(grammar)
    texts = [sampler.sentence(rng.choice(pool)) for _ in range(n)]
    named = [SimpleNamespace(name=v) for values in ha_slots.NAMES.values() for v in values]
    home = SimpleNamespace(language="en", areas=[SimpleNamespace(name=v) for v in ha_slots.AREAS],
                           floors=[SimpleNamespace(name=v) for v in ha_slots.FLOORS], entities=named)
    return home, texts


def overlap(first_names: set[str], last_names: set[str]) -> dict[str, Any]:
    """How many of our people's given and family names a redactor's lists (lowercase) already hold."""
    firsts = {n.split()[0].lower() for n in PERSON_NAMES}
    lasts = {w.lower() for n in PERSON_NAMES for w in n.split()[1:]}
    in_first, in_last = firsts & first_names, lasts & last_names
    return {"people": len(PERSON_NAMES), "given_names": len(firsts), "given_in_list": len(in_first),
            "family_names": len(lasts), "family_in_list": len(in_last),
            "given_share": round(len(in_first) / len(firsts), 4), "family_share": round(len(in_last) / len(lasts), 4)}
