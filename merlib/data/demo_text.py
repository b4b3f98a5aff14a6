"""Sentence pools of the demo corpus: the words carry valence, never the whole label.

- specific: a sentence only one emotion says;
- pairs: shared by the two emotions of equal valence and different arousal
  (ang + sad: negative; hap + neu: good or plain news), so text cannot separate them but
  prosody can;
- ambiguous: shared by all four; only the voice tells.
"""

OPENERS = ("", "Well, ", "Look, ", "You know, ", "Listen, ")

SPECIFIC = {
    "ang": (
        "I am absolutely furious with you.",
        "This is completely unacceptable and you know it.",
        "Stop lying to me right now.",
        "I am sick and tired of your excuses.",
        "How dare you talk to me like that?",
        "Get out of my office this minute.",
        "You ruined everything again, every single time.",
        "I will not put up with this any longer.",
        "Don't you ever touch my things again.",
        "That is the most idiotic thing I have ever heard.",
    ),
    "hap": (
        "This is the best news I have heard all year!",
        "I am so thrilled for you both.",
        "We won, can you believe it, we actually won!",
        "I love it, it is absolutely wonderful.",
        "I am so happy to see you again.",
        "Let's celebrate tonight, the drinks are on me.",
        "She said yes, we are getting married!",
        "What a fantastic surprise this is.",
        "I got the part, they loved my audition!",
        "This is a dream come true for me.",
    ),
    "neu": (
        "The meeting is scheduled for ten on Tuesday.",
        "Please fill in the form and hand it to the clerk.",
        "The train leaves from platform four.",
        "I need your license and your insurance card.",
        "We can discuss the budget after lunch.",
        "The report has three sections and an appendix.",
        "Turn left at the next corner and park by the gate.",
        "I will send the documents by mail.",
        "The office closes at five on weekdays.",
        "Your number will be called at the second window.",
    ),
    "sad": (
        "I miss him so much, every single day.",
        "Nobody even came to the funeral.",
        "I feel so alone in this empty house.",
        "She is gone and she is never coming back.",
        "I lost my job today and I don't know what to do.",
        "Everything I ever loved is gone now.",
        "I just can't stop crying.",
        "It was my fault, all of it was my fault.",
        "I wish I could see my father one more time.",
        "There is nothing left for me here.",
    ),
}

PAIRS = {
    ("ang", "sad"): (
        "I can't believe this happened to us.",
        "Why does this always happen to me?",
        "You left me with nothing at all.",
        "I never wanted any of this.",
        "This is the worst day of my life.",
        "You promised, and you broke your promise.",
        "I gave you everything and you threw it away.",
        "Nothing ever works out for me.",
    ),
    ("hap", "neu"): (
        "So we are moving to a new city next month.",
        "I got the letter from the university today.",
        "They are coming over for dinner on Friday.",
        "The new job starts on Monday.",
        "We bought a house near the lake.",
        "I talked to your mother this morning.",
        "The baby is due in the spring.",
        "We are taking the train to the coast.",
    ),
}

AMBIGUOUS = (
    "I don't know what to say.",
    "Are you serious about this?",
    "Well, that's it then.",
    "I didn't expect that at all.",
    "So this is what you wanted.",
    "Okay, tell me again.",
    "It has been a long time.",
    "Look at this, just look at it.",
    "I was there yesterday.",
    "Really, just like that?",
    "We need to talk about it.",
    "That's what she told me.",
)

# Drawn with these probabilities per utterance (text alone: about 0.45 + 0.30/2 + 0.25/4 UA).
POOL_SHARES = {"specific": 0.45, "pair": 0.30, "ambiguous": 0.25}

# Neutral, varied sentences for the speaker corpus (no emotion is carried by its prosody).
SPEAKER_SENTENCES = (
    tuple(s for pool in SPECIFIC.values() for s in pool)
    + tuple(s for pool in PAIRS.values() for s in pool)
    + AMBIGUOUS
    + (
        "The birch canoe slid on the smooth planks.",
        "Glue the sheet to the dark blue background.",
        "It is easy to tell the depth of a well.",
        "These days a chicken leg is a rare dish.",
        "Rice is often served in round bowls.",
        "The juice of lemons makes fine punch.",
        "The box was thrown beside the parked truck.",
        "Four hours of steady work faced us.",
        "A large size in stockings is hard to sell.",
        "The boy was there when the sun rose.",
    )
)
